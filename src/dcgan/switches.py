"""The fast path's switches, as a run uses them: each on or off, and why (speed.py decides them)."""

from __future__ import annotations

from dataclasses import dataclass, field

SWITCHES = ("channels_last", "fused_adam", "cudnn_benchmark", "amp", "compile")


@dataclass(frozen=True)
class Speed:
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
