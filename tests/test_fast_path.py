"""The fast path is correct (its speed is the benchmark's business, not the tests')."""

import csv

import pytest
import torch

from conftest import TINY, make_config
from dcgan import paths
from dcgan.errors import ConfigError
from dcgan.models import build_models
from dcgan import fast_path as fast_path_module
from dcgan.fast_path import Cpu, has_bf16_units, resolve_fast_path, fast_path_of_resumed_run
from dcgan.gan_step import GANStep, RunningMeans, epoch_batches
from dcgan.fast_path import FastPath
from dcgan.train import LOGGED, train

# bf16 where it runs fast: a CUDA GPU with bf16, or a CPU with bf16 units (amx_bf16, avx512_bf16).
BF16_DEVICES = [pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
                    not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()), reason="needs a CUDA GPU with bf16")]),
                pytest.param("cpu", marks=pytest.mark.skipif(not has_bf16_units(), reason="needs a CPU with bf16 units"))]
SMALL = dict(image_size=32, nz=16, ngf=8, ndf=8, batch_size=16)


def run_steps(speed: FastPath, steps: int = 3, device: str = "cpu", **overrides) -> tuple[dict, list]:
    cfg = make_config(**{**SMALL, **overrides})
    torch.manual_seed(0)
    generator, discriminator = build_models(cfg)
    gan = GANStep(generator, discriminator, cfg, torch.device(device), speed)
    data = torch.randint(0, 256, (steps, cfg.batch_size, 1, 32, 32), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(1)).to(device)
    noise = torch.randn(steps, cfg.batch_size, cfg.nz, 1, 1, generator=torch.Generator().manual_seed(2)).to(device)
    logged = [gan.step(batch, z).cpu() for batch, z in zip(data, noise)]
    weights = {f"{name}.{key}": value.detach().float().cpu() for name, net in
               (("g", gan.generator), ("d", gan.discriminator)) for key, value in net.state_dict().items()}
    return weights, logged


def assert_close(a: dict, b: dict, atol: float) -> None:
    for name in a:
        assert torch.allclose(a[name], b[name], atol=atol, rtol=0), \
            f"{name}: max difference {(a[name] - b[name]).abs().max().item():.2e}"


def test_fast_path_steps_match_eager_steps_in_fp32():
    eager, eager_logged = run_steps(FastPath())
    fast, fast_logged = run_steps(FastPath(channels_last=True, fused_adam=True))
    assert_close(eager, fast, atol=1e-5)
    assert torch.allclose(torch.stack(eager_logged), torch.stack(fast_logged), atol=1e-5)


@pytest.mark.slow
def test_compiled_steps_match_eager_steps_in_fp32():
    eager, _ = run_steps(FastPath(), steps=2)
    compiled, _ = run_steps(FastPath(compile=True), steps=2)
    assert_close(eager, compiled, atol=1e-4)


@pytest.mark.parametrize("device", BF16_DEVICES)
def test_bf16_steps_stay_near_fp32(device):
    eager, eager_logged = run_steps(FastPath(), device=device)
    fast, fast_logged = run_steps(FastPath(channels_last=True, fused_adam=True, cudnn_benchmark=device == "cuda",
                                        amp=True), device=device)
    assert_close(eager, fast, atol=5e-3)  # bf16 rounds the activations; three small steps stay close
    assert torch.allclose(torch.stack(eager_logged), torch.stack(fast_logged), atol=5e-2)
    changed = max((fast[name] - before).abs().max().item() for name, before in run_steps(FastPath(), steps=0)[0].items())
    assert changed > 1e-4  # the steps did move the weights: "close" is not "untouched"


def test_the_sampler_visits_every_image_once_per_epoch():
    batches = epoch_batches(n_images=103, batch_size=10, seed=0)
    epochs = []
    for _ in range(3):
        epoch = torch.cat([next(batches) for _ in range(10)])  # 10 full batches; 3 images dropped
        assert len(epoch) == len(set(epoch.tolist())) == 100 and epoch.max() < 103
        epochs.append(epoch)
    assert not torch.equal(epochs[0], epochs[1])  # a new order each epoch


def test_the_sampler_started_at_a_step_gives_the_batches_an_uninterrupted_one_gives():
    whole = epoch_batches(n_images=103, batch_size=10, seed=3)
    expected = [next(whole) for _ in range(25)]
    resumed = epoch_batches(n_images=103, batch_size=10, seed=3, first_step=13)  # mid-way through epoch 2
    assert all(torch.equal(next(resumed), batch) for batch in expected[13:])


def test_running_means_are_the_means_of_the_steps():
    running = RunningMeans(2, torch.device("cpu"))
    for step, values in enumerate(([1.0, 10.0], [2.0, 20.0], [6.0, 0.0]), 1):
        running.add(torch.tensor(values), step)
    assert running.read() == pytest.approx([3.0, 10.0])
    running.add(torch.tensor([5.0, 5.0]), 4)
    assert running.read() == pytest.approx([5.0, 5.0])  # read() starts a new window
    assert running.first_bad_step() is None


def test_running_means_name_the_first_step_that_was_not_finite():
    running = RunningMeans(2, torch.device("cpu"))
    for step, values in enumerate(([1.0, 1.0], [1.0, float("nan")], [float("inf"), 1.0]), 1):
        running.add(torch.tensor(values), step)
    assert running.first_bad_step() == 2


def test_logging_every_k_steps_reports_the_means_of_logging_every_step(work_folder):
    logs = {}
    for every in (1, 4):
        train(make_config(**{**TINY, "sample_every": 100, "eval_every": 100, "log_every": every}))
        logs[every] = list(csv.DictReader(open(paths.TRAIN_LOG)))
    assert [int(row["step"]) for row in logs[4]] == [4, 8]
    for window, row in enumerate(logs[4]):
        for name in LOGGED:
            steps = [float(r[name]) for r in logs[1][4 * window:4 * window + 4]]
            assert float(row[name]) == pytest.approx(sum(steps) / 4, abs=2e-6), name


def test_switches_a_cpu_cannot_use_are_refused_with_a_reason():
    with pytest.raises(ConfigError, match="`cudnn_benchmark` = 'on' needs a CUDA device"):
        resolve_fast_path(make_config(cudnn_benchmark="on"), torch.device("cpu"))
    assert resolve_fast_path(make_config(channels_last="on", fused_adam="on", amp="off"), torch.device("cpu")) == \
        FastPath(channels_last=True, fused_adam=True)


@pytest.fixture
def fake_cpu(monkeypatch, tmp_path):
    """A CPU with the given flags, whose probe reports the given images/s per variant (and counts calls)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    measured = []

    def make(flags, speeds):
        monkeypatch.setattr(fast_path_module, "cpu", lambda: Cpu("Test CPU", frozenset(flags)))

        def images_per_second(cfg, variants):
            measured.extend(variants)
            return {name: speeds[name] for name in variants}

        monkeypatch.setattr(fast_path_module, "_images_per_second", images_per_second)
        return measured
    return make


@pytest.fixture
def others_use(monkeypatch):
    """Pretend other processes use `cores` while the probe measures."""
    def set_cores(cores: float):
        clock = iter(range(0, 10**6, 10))  # each perf_counter call: 10 s later
        used = iter([0.0, 10.0 * cores] * 100)
        monkeypatch.setattr(fast_path_module.time, "perf_counter", lambda: float(next(clock)))
        monkeypatch.setattr(fast_path_module, "_others_cpu_seconds", lambda: next(used))
    return set_cores


def test_auto_bf16_on_a_cpu_follows_the_measurement_where_the_cpu_has_bf16_units(fake_cpu, others_use):
    others_use(0.1)
    measured = fake_cpu({"avx512f", "avx512_bf16"}, {"fp32": 100.0, "channels_last": 104.0, "amp": 150.0})
    chosen = resolve_fast_path(make_config(), torch.device("cpu"))
    assert chosen == FastPath(channels_last=False, fused_adam=True, amp=True)  # 1.04x is noise; 1.5x pays
    assert "avx512_bf16" in chosen.reasons["amp"] and "150 vs 100 images/s" in chosen.reasons["amp"]
    assert "under the 1.10x" in chosen.reasons["channels_last"]
    assert chosen.as_params()["amp_effective"] is True and "amp_reason" in chosen.as_params()
    assert sorted(measured) == ["amp", "channels_last", "fp32"]
    again = resolve_fast_path(make_config(), torch.device("cpu"))  # the verdict is cached for this machine
    assert again == chosen and len(measured) == 3 and "measured earlier" in again.reasons["amp"]
    measured_slow = fake_cpu({"amx_bf16"}, {"fp32": 100.0, "channels_last": 130.0, "amp": 60.0})
    slow = resolve_fast_path(make_config(image_size=32), torch.device("cpu"))  # another shape: measured anew
    assert slow == FastPath(channels_last=True, fused_adam=True, amp=False) and len(measured_slow) == 6


def test_a_verdict_measured_while_the_machine_is_busy_is_not_cached(fake_cpu, others_use):
    others_use(1.5)
    measured = fake_cpu({"avx512_bf16"}, {"fp32": 100.0, "channels_last": 100.0, "amp": 150.0})
    assert resolve_fast_path(make_config(), torch.device("cpu")).amp
    assert resolve_fast_path(make_config(), torch.device("cpu")).amp and len(measured) == 6  # measured again
    assert not fast_path_module.probe_cache().exists()


def test_auto_bf16_is_off_without_bf16_units_and_on_is_allowed_with_a_warning(fake_cpu):
    measured = fake_cpu({"avx2", "fma"}, {"fp32": 100.0, "channels_last": 120.0})
    chosen = resolve_fast_path(make_config(), torch.device("cpu"))
    assert chosen == FastPath(channels_last=True, fused_adam=True, amp=False)
    assert "no bf16 units" in chosen.reasons["amp"] and "amp" not in measured  # never measured: it would crawl
    with pytest.warns(UserWarning, match="without bf16 units.*slower than fp32"):
        forced = resolve_fast_path(make_config(amp="on"), torch.device("cpu"))
    assert forced.amp


def test_the_probe_measures_real_steps_and_leaves_the_run_random_stream_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(fast_path_module, "_others_cpu_seconds", lambda: 0.0)
    monkeypatch.setattr(fast_path_module, "cpu", lambda: Cpu("Test CPU", frozenset({"avx512_bf16"})))
    torch.manual_seed(5)
    state = torch.get_rng_state()
    speeds, cached = fast_path_module.probe_speeds(make_config(**SMALL), ["channels_last", "amp"], {"fused_adam": True})
    assert torch.equal(torch.get_rng_state(), state)
    assert not cached and set(speeds) == {"fp32", "channels_last", "amp"} and all(v > 0 for v in speeds.values())
    assert fast_path_module.probe_speeds(make_config(**SMALL), ["channels_last", "amp"], {"fused_adam": True}) == (speeds, True)


def test_the_cpu_time_of_other_processes_is_measured_without_this_one():
    before = fast_path_module._others_cpu_seconds()
    sum(i * i for i in range(3_000_000))  # this process's own work does not count
    assert fast_path_module._others_cpu_seconds() - before < 0.3


def test_a_resumed_run_keeps_the_auto_switches_it_started_with():
    now = FastPath(channels_last=True, fused_adam=True, amp=False)
    before = {"device": "cpu", "speed": {**now.switches(), "amp": True, "channels_last": False}}
    resumed = fast_path_of_resumed_run(make_config(channels_last="on"), now, before, torch.device("cpu"))
    assert resumed == FastPath(channels_last=True, fused_adam=True, amp=True)  # `on` is the user's; auto as before
    assert resumed.reasons["amp"] == "as before the run's stop"
    assert fast_path_of_resumed_run(make_config(), now, {**before, "device": "cuda"}, torch.device("cpu")) == now
