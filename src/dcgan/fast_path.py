"""How fast a run trains: the fast path's switches (FastPath), each auto, on or off, and how auto decides them.

`auto` is decided at run time for the hardware in hand, never from a figure measured elsewhere:
- On CUDA: channels_last, fused Adam and cudnn.benchmark on; bf16 autocast (`amp`) where the GPU
  supports bf16; torch.compile off until asked.
- On a CPU: bf16 is a candidate only where the processor has bf16 units (`amx_bf16`, `avx512_bf16`,
  or Arm's `bf16`); without them it is emulated and many times slower. The candidates (channels_last
  and bf16, where auto) are then measured: a few training steps of this run's own model and batch,
  each way, in turns (about 1-3 % of a quick run). A switch is turned on if it is at least PAYS_OFF
  faster. The verdict is cached per machine (CPU model, threads, torch version, shape; see
  probe_cache()), unless other work was keeping the cores busy while it was measured.
  torch.compile stays off: its compilation takes longer than a probe may.
Each switch's choice and the reason for it are printed and logged to MLflow (`<switch>_effective`,
`<switch>_reason`).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from dcgan.errors import ConfigError
from dcgan.io import write_json
from dcgan.models import build_models, draw_noise
from dcgan.gan_step import GANStep

SWITCHES = ("channels_last", "fused_adam", "cudnn_benchmark", "amp", "compile")


@dataclass(frozen=True)
class FastPath:
    """The switches a run uses: each on or off, and why."""

    channels_last: bool = False
    fused_adam: bool = False
    cudnn_benchmark: bool = False
    amp: bool = False  # bf16 autocast; the discriminator outputs logits, so the loss stays in fp32
    compile: bool = False
    # Why each switch is on or off: what was measured or seen (MLflow `<switch>_reason`).
    reasons: dict = field(default_factory=dict, compare=False, hash=False)

    def switches(self) -> dict[str, bool]:
        return {name: getattr(self, name) for name in SWITCHES}

    def as_params(self) -> dict[str, object]:
        """For MLflow: what actually ran, beside the requested auto/on/off, and why."""
        return {**{f"{name}_effective": on for name, on in self.switches().items()},
                **{f"{name}_reason": reason for name, reason in self.reasons.items()}}

    def describe(self) -> str:
        return "\n".join(f"  {name}: {'on' if on else 'off'}" + (f" ({self.reasons[name]})" if name in self.reasons else "")
                         for name, on in self.switches().items())

BF16_UNITS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 matrix/vector units; Arm's `bf16` (aarch64 Features)
PAYS_OFF = 1.10  # a measured gain below 10% is within the probe's noise, and not worth bf16's rounding
PROBE_STEPS = 3  # timed steps per candidate, after one warm-up step


@dataclass(frozen=True)
class Cpu:
    model: str
    flags: frozenset

    @property
    def bf16_units(self) -> list[str]:
        return [flag for flag in BF16_UNITS if flag in self.flags]


@lru_cache(maxsize=1)
def cpu() -> Cpu:
    """The CPU's model name and feature flags, from /proc/cpuinfo (Linux); elsewhere none are known."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model name") and value.strip():
                model = value.strip()
            elif key in ("flags", "Features"):  # x86, Arm
                flags.update(value.split())
    except OSError:
        pass
    return Cpu(model, frozenset(flags))


def resolve_fast_path(cfg, device: torch.device, probe: bool = True) -> FastPath:
    """The switches for this run. Impossible requests are refused before any work; `auto` is decided
    here (on a CPU by measuring, unless `probe` is False, e.g. under DDP, where the flags decide)."""
    cuda = device.type == "cuda"
    if cfg.cudnn_benchmark == "on" and not cuda:
        raise ConfigError(f"`cudnn_benchmark` = 'on' needs a CUDA device, and this run is on {device.type}. "
                          "Use `cudnn_benchmark: auto` (on only where it helps) or `off`.")
    if cuda and cfg.amp == "on" and not torch.cuda.is_bf16_supported():
        raise ConfigError("`amp` = 'on' needs bf16, which this CUDA device does not support. Use `amp: auto` or `off`.")

    chosen = {name: getattr(cfg, name) == "on" for name in SWITCHES}
    reasons: dict[str, str] = {}
    auto = [name for name in SWITCHES if getattr(cfg, name) == "auto"]
    if cuda:
        decided = {"channels_last": True, "fused_adam": True, "cudnn_benchmark": True,
                   "amp": torch.cuda.is_bf16_supported(), "compile": False}
        for name in auto:
            chosen[name] = decided[name]
            reasons[name] = {"amp": "CUDA with bf16" if decided["amp"] else "CUDA without bf16",
                             "compile": "off until asked (measure it: benchmarks/run.py)"}.get(name, "CUDA")
    elif device.type == "cpu":
        _decide_on_cpu(cfg, auto, chosen, reasons, probe)
    else:  # MPS: nothing here was measured there
        for name in auto:
            chosen[name] = False
            reasons[name] = f"not measured on {device.type}"
    return FastPath(**chosen, reasons=reasons)


def _decide_on_cpu(cfg, auto: list[str], chosen: dict, reasons: dict, probe: bool) -> None:
    units = cpu().bf16_units
    if cfg.amp == "on" and not units:
        warnings.warn(f"`amp: on` on a CPU without bf16 units ({cpu().model}; none of {', '.join(BF16_UNITS[:2])} "
                      "in its flags): bf16 is emulated there and expected to be several times slower than fp32 "
                      "(10-70x was measured on one such CPU). `amp: auto` measures it and decides.", stacklevel=3)
    for name in ("cudnn_benchmark", "compile"):
        if name in auto:
            chosen[name] = False
            reasons[name] = "CUDA only" if name == "cudnn_benchmark" else \
                "off on a CPU: compiling takes longer than a probe may (measure it: benchmarks/run.py --only train)"
    if "fused_adam" in auto:
        chosen["fused_adam"] = True
        reasons["fused_adam"] = "one kernel per parameter group instead of one per tensor"
    candidates = [name for name in ("channels_last", "amp") if name in auto]
    if "amp" in candidates and not units:
        candidates.remove("amp")
        chosen["amp"] = False
        reasons["amp"] = f"no bf16 units in this CPU's flags ({cpu().model})"
    if not candidates:
        return
    if not probe:
        for name in candidates:
            chosen[name] = True
            reasons[name] = f"bf16 units: {', '.join(units)} (not measured)" if name == "amp" else "not measured"
        return
    speeds, cached = probe_speeds(cfg, candidates, chosen)
    base = speeds[_variant_name({})]
    for name in candidates:
        alone = speeds[_variant_name({name: True})]
        chosen[name] = alone >= PAYS_OFF * base
        unit_note = f"bf16 units {', '.join(units)}; " if name == "amp" else ""
        reasons[name] = (f"{unit_note}{'measured' if not cached else 'measured earlier'} at this shape: "
                         f"{alone:.0f} vs {base:.0f} images/s without it ({alone / base:.2f}x"
                         f"{'' if chosen[name] else f', under the {PAYS_OFF:.2f}x it must gain'})")


def _variant_name(on: dict) -> str:
    return "+".join(sorted(name for name, value in on.items() if value)) or "fp32"


def probe_cache() -> Path:
    """Verdicts of earlier probes on this machine (delete the file to measure again)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "dcgan-pipeline" / "speed-probes.json"


def probe_speeds(cfg, candidates: list[str], fixed: dict) -> tuple[dict[str, float], bool]:
    """Images/s of this run's step with nothing, and with each candidate alone: (speeds, from the cache)."""
    key = json.dumps({"cpu": cpu().model, "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "shape": [cfg.arch, cfg.nc, cfg.image_size, cfg.nz, cfg.ngf, cfg.ndf, cfg.batch_size],
                      "fused_adam": fixed["fused_adam"], "candidates": sorted(candidates)}, sort_keys=True)
    path = probe_cache()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key], True
    variants = [{}] + [{name: True} for name in candidates]
    print(f"fast path: measuring {', '.join(_variant_name(v) for v in variants)} at this run's shape "
          f"({cfg.image_size}x{cfg.image_size}, batch {cfg.batch_size}) on {cpu().model}", flush=True)
    before = _others_cpu_seconds()
    started = time.perf_counter()
    speeds = _images_per_second(cfg, {_variant_name(v): FastPath(fused_adam=fixed["fused_adam"], **v) for v in variants})
    others = (_others_cpu_seconds() - before) / (time.perf_counter() - started)  # cores other processes kept busy
    if others > 0.5:  # the verdict holds for now, not for the machine
        print(f"fast path: other processes kept {others:.1f} of {os.cpu_count()} cores busy while it was measured, "
              "so the verdict is not cached", flush=True)
        return speeds, False
    known[key] = speeds
    try:
        write_json(path, known)
    except OSError as exc:  # a read-only home: measure again next time
        print(f"fast path: could not cache the probe's verdict in {path}: {exc}")
    return speeds, False


def _others_cpu_seconds() -> float:
    """CPU seconds that every process but this one has used since boot (Linux; elsewhere 0)."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait, in clock ticks
    mine = os.times()
    return busy / os.sysconf("SC_CLK_TCK") - (mine.user + mine.system)


def _images_per_second(cfg, variants: dict[str, FastPath]) -> dict[str, float]:
    """Images/s of each variant's training step, timed in turns (A B C A B C ...), so that a passing
    load on the machine slows every variant alike; the median of each variant's steps."""
    device = torch.device("cpu")
    with torch.random.fork_rng(devices=[]):  # the run's own random stream is left as it was
        torch.manual_seed(0)
        real = torch.randint(0, 256, (cfg.batch_size, cfg.nc, cfg.image_size, cfg.image_size), dtype=torch.uint8)
        noise = draw_noise(cfg.batch_size, cfg, device)
        steps = {}
        for name, speed in variants.items():
            steps[name] = GANStep(*build_models(cfg), cfg, device, speed)
            steps[name].step(real, noise)  # warm-up: allocations, oneDNN kernel selection
        times = {name: [] for name in variants}
        for _ in range(PROBE_STEPS):
            for name, gan in steps.items():
                started = time.perf_counter()
                gan.step(real, noise)
                times[name].append(time.perf_counter() - started)
    return {name: round(cfg.batch_size / statistics.median(seconds), 1) for name, seconds in times.items()}


def has_bf16_units() -> bool:
    return bool(cpu().bf16_units)


def fast_path_of_resumed_run(cfg, speed: FastPath, resume: dict, device: torch.device) -> FastPath:
    """The switches left on `auto` take the value the run had before its stop (a probe could decide
    otherwise now, and bf16 or not changes the numbers); switches set on or off are the user's."""
    before = resume.get("speed")
    if before is None or resume.get("device") != device.type:
        return speed
    chosen, reasons = speed.switches(), dict(speed.reasons)
    for name in SWITCHES:
        if getattr(cfg, name) == "auto":
            chosen[name] = before[name]
            reasons[name] = "as before the run's stop"
    return FastPath(**chosen, reasons=reasons)
