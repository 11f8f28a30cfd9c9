"""RunConfig: one run, as one frozen, validated value.

Built from CLI flags or a sweep trial, checked in __post_init__ (names against the registries
with close-match suggestions, ranges, the cut against the model), then passed one way to
engine.train. `to_params()` is the only place that flattens it into the names users see in
MLflow and in reports.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from bench import data, models
from bench.partition import PARTITIONS, Partition
from bench.acceleration import AMP
from bench.errors import UsageError
from bench.registry import unknown_name_message

DEVICES = ("auto", "cpu", "cuda")
GATINGS = ("global", "per-client")
# PAPER.md's open choices, each a logged field rather than a hidden constant.
CACHE_AUGMENT = ("view", "off")  # cache the one augmented view sent / no augmentation in FORWARD
FROZEN_BN = ("eval", "train")  # batch norm of the frozen client in FORWARD epochs
# After the warm-up: x lr_gamma at each milestone (PAPER.md), or a decay to 0 at the last step.
LR_SCHEDULES = ("step", "linear", "cosine")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. Defaults follow PAPER.md's recipe where it gives one."""

    model: str = "smallcnn"
    width: float = 1.0
    cut: int = 2
    dataset: str = "cifar10"
    data_dir: str | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    augment: bool = True
    eval_every: int = 1  # test after every N-th epoch and after the last
    clients: int = 1
    # How the training set is split among the clients (bench/partition.py).
    partition: str = "iid"
    partition_alpha: float | None = None  # dirichlet: the concentration
    classes_per_client: int | None = None  # classes: K
    partition_min_samples: int = 10  # the floor of samples per client of a non-IID partition
    gating: str = "global"
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    lr_milestones: tuple[int, ...] = (60, 120, 160)
    lr_gamma: float = 0.2
    lr_schedule: str = "step"
    label_smoothing: float = 0.0  # of the server's training loss (the gate's signal included)
    seed: int = 0
    # Seed of the train and test subsets (None: the run's seed). A fixed one keeps every seed on the
    # same images, so seeds differ in weights, order and augmentation alone.
    subset_seed: int | None = None
    policy: str = "always"
    policy_args: tuple[tuple[str, Any], ...] = field(default=())
    quant_up: str = "fp32"
    quant_up_args: tuple[tuple[str, Any], ...] = field(default=())
    quant_down: str = "fp32"
    quant_down_args: tuple[tuple[str, Any], ...] = field(default=())
    cache_augment: str = "view"
    frozen_bn: str = "eval"
    # Gates and cache beyond the paper (bench/layouts/); every one off by default.
    val_fraction: float = 0.0  # share of each client's shard held out as the validation slice
    cache_mixup: float = 0.0  # ALPHA of mixup on cached activations (0 = off)
    cache_noise: float = 0.0  # SIGMA of channel-relative noise on cached activations (0 = off)
    cache_views: int = 1  # augmented views a FORWARD epoch sends per image
    refresh_threshold: float | None = None  # per-sample refresh: resend a sample when it moved this much
    device: str = "auto"
    transport: str = "inproc"
    # The link model (bench/wire/linkmodel.py): none unless both rates are given.
    uplink_mbit: float | None = None
    downlink_mbit: float | None = None
    rtt_ms: float | None = None
    # How the device computes (bench/acceleration.py); the defaults are plain fp32 eager PyTorch.
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self):
        from bench.wire.transport import TRANSPORTS  # here: the wire's modules import RunConfig
        from policies import POLICIES
        from quantizers import QUANTIZERS, arguments

        _choice("model", self.model, models.MODELS)
        _choice("dataset", self.dataset, data.DATASETS)
        _choice("gating", self.gating, GATINGS)
        _choice("partition", self.partition, PARTITIONS)
        self.partition_scheme().check()
        _choice("cache_augment", self.cache_augment, CACHE_AUGMENT)
        _choice("frozen_bn", self.frozen_bn, FROZEN_BN)
        _choice("device", self.device, DEVICES)
        _registered("transport", self.transport, TRANSPORTS)
        _link_model(self.uplink_mbit, self.downlink_mbit, self.rtt_ms)
        _choice("amp", self.amp, AMP)
        for name in ("quant_up", "quant_down"):
            _registered(name, getattr(self, name), QUANTIZERS)
        _registered("policy", self.policy, POLICIES)
        _at_least("width", self.width, 0, strict=True)
        _at_least("epochs", self.epochs, 1)
        if not isinstance(self.eval_every, int) or isinstance(self.eval_every, bool) or self.eval_every < 1:
            raise UsageError(f"eval_every: must be an integer >= 1, got {self.eval_every!r}")
        _at_least("batch_size", self.batch_size, 1)
        _at_least("clients", self.clients, 1)
        _at_least("lr", self.lr, 0, strict=True)
        _at_least("momentum", self.momentum, 0)
        _at_least("weight_decay", self.weight_decay, 0)
        _at_least("warmup_epochs", self.warmup_epochs, 0)
        _at_least("lr_gamma", self.lr_gamma, 0, strict=True)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if not (isinstance(self.label_smoothing, (int, float)) and not isinstance(self.label_smoothing, bool)
                and 0 <= self.label_smoothing < 1):
            raise UsageError(f"label_smoothing: must be a number >= 0 and < 1, got {self.label_smoothing!r}")
        _at_least("cache_mixup", self.cache_mixup, 0)
        _at_least("cache_noise", self.cache_noise, 0)
        if not (isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1):
            raise UsageError(f"val_fraction: must be a number >= 0 and < 1, got {self.val_fraction!r}")
        if not isinstance(self.cache_views, int) or isinstance(self.cache_views, bool) or self.cache_views < 1:
            raise UsageError(f"cache_views: must be an integer >= 1, got {self.cache_views!r}")
        if self.refresh_threshold is not None:
            _at_least("refresh_threshold", self.refresh_threshold, 0)
            if self.cache_views > 1 or self.cache_augment != "view":
                raise UsageError("refresh_threshold: per-sample refresh keeps one fixed view per sample; "
                                 "it needs cache_views = 1 and cache_augment = view")
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) is not None:
                _at_least(name, getattr(self, name), 1)
        if self.subset_seed is not None:
            _at_least("subset_seed", self.subset_seed, 0)
        layers = models.num_layers(self.model)
        if not 1 <= self.cut <= layers - 1:
            raise UsageError(f"cut: must be between 1 and {layers - 1} for {self.model}, got {self.cut}")
        object.__setattr__(self, "policy_args", _typed_args("policy", POLICIES.get(self.policy), self.policy_args))
        if getattr(self.make_policy(), "signal", "train") == "val" and not self.val_fraction:  # validates it too
            raise UsageError("val_fraction: must be > 0 when policy.signal = val (the validation loss needs a slice)")
        for stream, direction in enumerate(("quant_up", "quant_down")):
            codec, args = QUANTIZERS.get(getattr(self, direction)), getattr(self, f"{direction}_args")
            args = _typed_args(direction, codec, args, stages=True)
            if "seed" in [f.name for f in arguments(codec)] and "seed" not in dict(args):
                # Stochastic rounding draws follow the run's seed, up and down apart.
                args = tuple(sorted(args + (("seed", 2 * self.seed + stream),)))
            object.__setattr__(self, f"{direction}_args", args)
            try:
                self.make_codec(direction)  # the codec validates its own arguments
            except UsageError as exc:
                raise UsageError(f"{direction}.{exc}") from None

    def data_key(self) -> tuple:
        """What load_data depends on: configs with equal keys load the same data set."""
        subsets = self.seed if self.subset_seed is None else self.subset_seed
        return self.dataset, self.data_dir, self.train_subset, self.test_subset, subsets

    def load_data(self) -> "data.Dataset":
        """The data set this run trains and tests on, subsets drawn with the run's seed; a config
        the data set is too small for (more clients than a class has samples, a partition that
        leaves a client under its floor, or shards too small for the validation slice) is a
        UsageError."""
        ds = data.load(self.dataset, self.data_dir, train_subset=self.train_subset, test_subset=self.test_subset,
                       seed=self.data_key()[-1])
        data.check_hold_out([len(s) for s in self.shards(ds.train_y)], self.val_fraction)
        return ds

    def partition_scheme(self) -> Partition:
        return Partition(self.partition, self.partition_alpha, self.classes_per_client, self.partition_min_samples)

    def shards(self, labels) -> list:
        """The clients' shards of the training labels, as `partition` says, drawn with the run's seed."""
        return self.partition_scheme().split(labels, self.clients, self.seed)

    def link_model(self):
        """The modelled link (bench/wire/linkmodel.py), or None when the run models none."""
        from bench.wire.linkmodel import LinkModel

        if self.uplink_mbit is None:
            return None
        return LinkModel(self.uplink_mbit, self.downlink_mbit, self.rtt_ms or 0.0)

    def make_policy(self):
        """A fresh policy instance (one per run, or one per client with per-client gating)."""
        from policies import POLICIES

        return POLICIES.get(self.policy)(**dict(self.policy_args))

    def make_codec(self, direction: str):
        """A fresh codec for `direction` ("quant_up" or "quant_down"), built with its arguments."""
        from quantizers import make_codec

        return make_codec(getattr(self, direction), getattr(self, f"{direction}_args"))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        """The RunConfig that `dataclasses.asdict` and JSON turned into `values` (lists for its tuples);
        UsageError if it is not a valid one."""
        fields = dict(values)
        fields["lr_milestones"] = tuple(fields.get("lr_milestones", ()))
        for name in ("policy_args", "quant_up_args", "quant_down_args"):
            fields[name] = tuple(tuple(pair) for pair in fields.get(name, ()))
        return cls(**fields)

    def to_params(self) -> dict[str, Any]:
        """Flat name -> value map: the params logged to MLflow and read back by reports. Policy and
        codec arguments appear as `policy.<field>`, `quant_up.<arg>` and `quant_down.<arg>`, every
        one with its resolved value, defaults included."""
        from quantizers import codec_params

        nested = ("policy_args", "quant_up_args", "quant_down_args")
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in nested}
        params["lr_milestones"] = ",".join(str(m) for m in self.lr_milestones)
        policy = self.make_policy()
        for f in dataclasses.fields(policy):
            params[f"policy.{f.name}"] = getattr(policy, f.name)
        for direction in ("quant_up", "quant_down"):
            for name, value in codec_params(getattr(self, direction), getattr(self, f"{direction}_args")).items():
                params[f"{direction}.{name}"] = value
        return params


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(unknown_name_message(name, str(value), list(allowed)))


def _registered(name: str, value: str, registry) -> None:
    if value not in registry:
        raise UsageError(unknown_name_message(name, value, registry.names()))


def _at_least(name: str, value: Any, low: float, strict: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value > low if strict else value >= low)
    if not ok:
        raise UsageError(f"{name}: must be a number {'>' if strict else '>='} {low}, got {value!r}")


def _link_model(uplink_mbit, downlink_mbit, rtt_ms) -> None:
    given = {"uplink_mbit": uplink_mbit, "downlink_mbit": downlink_mbit, "rtt_ms": rtt_ms}
    if all(v is None for v in given.values()):
        return
    for name in ("uplink_mbit", "downlink_mbit"):
        if given[name] is None:
            raise UsageError(f"{name}: a link model needs both uplink_mbit and downlink_mbit")
        _at_least(name, given[name], 0, strict=True)
    if rtt_ms is not None:
        _at_least("rtt_ms", rtt_ms, 0)


def _typed_args(prefix: str, cls: type, args, stages: bool = False) -> tuple[tuple[str, Any], ...]:
    """Check the names against the arguments of a policy or codec class (with `stages`, also the
    stage arguments every codec takes) and convert strings ("3", "0.02") to their types; errors
    name the argument `<prefix>.<name>`."""
    from quantizers import arguments
    from quantizers.wrappers import Stages

    fields = {f.name for f in arguments(cls)}
    hints = typing.get_type_hints(cls) if fields else {}
    if stages:
        fields |= {f.name for f in arguments(Stages)}
        hints |= typing.get_type_hints(Stages)
    out = []
    for name, value in (args.items() if isinstance(args, dict) else args):
        if not fields:
            raise UsageError(f"{prefix}.{name}: {cls.__name__} takes no arguments")
        if name not in fields:
            raise UsageError(unknown_name_message(f"{prefix}.{name}", name, sorted(fields)))
        out.append((name, _convert(f"{prefix}.{name}", value, hints[name])))
    return tuple(sorted(out))


def _convert(field_name: str, value: Any, hint: Any) -> Any:
    if not isinstance(value, str) or hint is str:
        return value
    try:
        if hint is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        return hint(value)
    except (TypeError, ValueError):
        raise UsageError(f"{field_name}: expected {getattr(hint, '__name__', hint)}, got {value!r}") from None
