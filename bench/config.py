"""RunConfig: one run, as one frozen, validated value.

Built from CLI flags or a sweep trial, checked in __post_init__ (names against the registries
with close-match suggestions, ranges, the cut against the model), then passed one way to
engine.train. `to_params()` is the only place that flattens it into the names users see in
MLflow and in reports.

Each field says once, in its declaration (`option`), what it means, which values it takes (a closed
set, or the names of a registry) and, for an engine option that makes a setting of its own, that
its default is its "off" value: the CLI's flags (bench/parser.py), the checks here and the report's
labels (reports/frames.py) read them from there. BASELINE, the setting every reduction is measured
against, is a run's defaults.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from bench import data, models, subsets
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
# The setting every reduction is measured against: vanilla split learning, every epoch FULL, FP32 both
# ways. A run's defaults; the first trial of every study; the report's reference.
BASELINE = {"policy": "always", "quant_up": "fp32", "quant_down": "fp32"}
# The registries whose names a field takes, by the registry's kind (Registry.kind).
REGISTRY_KINDS = ("policy", "codec", "transport")


def option(default: Any = None, help: str = "", *, choices: tuple | None = None, registry: str | None = None,
           mechanism: bool = False, cache: bool = False, **kwargs) -> Any:
    """A RunConfig field with what everything else reads from it: `help`, what it means (the CLI's
    help); its allowed values, `choices` or the names of the registry of kind `registry` (checked
    here, listed by the CLI); and `mechanism`: an engine option that makes a setting of its own when
    switched on, its default being its "off" value (the report names it in the setting's family); and
    `cache`: an option that acts only in FORWARD and CACHED epochs (see `without_inert`)."""
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if registry is not None:
        assert registry in REGISTRY_KINDS, registry
        metadata["registry"] = registry
    if mechanism:
        metadata["off"] = default
    if cache:
        metadata["cache"] = True
    return field(default=default, metadata=metadata, **kwargs)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. Defaults follow PAPER.md's recipe where it gives one."""

    model: str = option("smallcnn", "network to split", choices=models.MODELS)
    width: float = option(1.0, "multiplier of every channel count (0.25 = a quarter as wide); > 0")
    cut: int = option(2, "layers on the client, pools included; 1 .. the model's layers - 1")
    dataset: str = option("cifar10", "data set to train and test on", choices=data.DATASETS)
    data_dir: str | None = None
    train_subset: int | None = option(None, "train on this many images, equal per class (default: all)")
    test_subset: int | None = option(None, "test on this many images, equal per class (default: all)")
    augment: bool = option(True, "random crop and flip of training images")
    eval_every: int = option(1, "test after every N-th epoch and after the last (test/acc is logged for those "
                                "epochs); >= 1")
    clients: int = option(1, "edge clients, each with its own shard and copy of the client network; >= 1")
    # How the training set is split among the clients (bench/partition.py).
    partition: str = option("iid", "how the training set is split among clients: equal and IID, Dirichlet label "
                                   "skew (--partition-alpha), or K classes each (--classes-per-client)",
                            choices=PARTITIONS)
    partition_alpha: float | None = option(None, "Dirichlet concentration of --partition dirichlet (small: each "
                                                 "client sees few classes); > 0")
    classes_per_client: int | None = option(None, "classes each client holds with --partition classes; 1 .. the "
                                                  "data set's classes")
    partition_min_samples: int = option(10, "the least samples any client may hold in a non-IID partition "
                                            "(Dirichlet draws are repeated until every client has them); >= 1")
    gating: str = option("global", "one policy for all clients (global) or one per client, fed by its own loss "
                                   "(per-client)", choices=GATINGS)
    epochs: int = option(5, "training epochs; >= 1")
    batch_size: int = option(128, "images per batch; >= 1")
    lr: float = option(0.05, "peak SGD learning rate; > 0")
    momentum: float = option(0.9, "SGD momentum; >= 0")
    weight_decay: float = option(5e-4, "SGD weight decay; >= 0")
    warmup_epochs: int = option(1, "linear learning-rate warm-up, in epochs; >= 0")
    lr_milestones: tuple[int, ...] = (60, 120, 160)
    lr_gamma: float = option(0.2, "learning-rate factor at each of --lr-milestones (lr schedule step); > 0")
    lr_schedule: str = option("step", "after the warm-up: x lr_gamma at each milestone (step), or a linear or "
                                      "cosine decay to 0 at the last step", choices=LR_SCHEDULES)
    label_smoothing: float = option(0.0, "label smoothing of the server's training loss; in [0, 1)")
    seed: int = option(0, "seed of weights, subsets, shards, shuffling and augmentation")
    # Seed of the train and test subsets (None: the run's seed). A fixed one keeps every seed on the
    # same images, so seeds differ in weights, order and augmentation alone.
    subset_seed: int | None = option(None, "seed of the train and test subsets instead of --seed (the same "
                                           "images for every seed)")
    policy: str = option(BASELINE["policy"], "gating policy: which epochs run FULL, FORWARD or CACHED (its "
                                             "fields: --policy-arg)", registry="policy")
    policy_args: tuple[tuple[str, Any], ...] = field(default=())
    quant_up: str = option(BASELINE["quant_up"], "codec for activations, client -> server", registry="codec")
    quant_up_args: tuple[tuple[str, Any], ...] = field(default=())
    quant_down: str = option(BASELINE["quant_down"], "codec for gradients, server -> client", registry="codec")
    quant_down_args: tuple[tuple[str, Any], ...] = field(default=())
    cache_augment: str = option("view", "what FORWARD epochs send: the augmented view that is cached, or "
                                        "unaugmented images", choices=CACHE_AUGMENT, cache=True)
    frozen_bn: str = option("eval", "batch-norm mode of the frozen client in FORWARD epochs", choices=FROZEN_BN,
                       cache=True)
    # Gates and cache beyond the paper (bench/layouts/); every one off by default.
    val_fraction: float = option(0.0, "share of each client's shard held out as the validation slice of "
                                      "policy.signal=val; in [0, 1)", mechanism=True)
    cache_mixup: float = option(0.0, "mixup ALPHA on cached activations and labels in CACHED epochs (0 = off); "
                                     ">= 0", mechanism=True, cache=True)
    cache_noise: float = option(0.0, "Gaussian noise on cached activations, SIGMA x each channel's spread "
                                     "(0 = off); >= 0", mechanism=True, cache=True)
    cache_views: int = option(1, "augmented views of each image a FORWARD epoch sends; CACHED epochs cycle "
                                 "through them; >= 1", mechanism=True, cache=True)
    refresh_threshold: float | None = option(None, "per-sample refresh: resend a sample in a FORWARD epoch when "
                                                   "its activation moved more than this, relative (default: off)",
                                             mechanism=True, cache=True)
    device: str = option("auto", "where to train (auto: CUDA when there is one)", choices=DEVICES)
    transport: str = option("inproc", "where the server side runs: in this process (inproc) or a local "
                                      "`bench serve` process (tcp)", registry="transport")
    # The link model (bench/wire/linkmodel.py): none unless both rates are given.
    uplink_mbit: float | None = option(None, "modelled uplink rate in Mbit/s for time/comm_s (with "
                                             "--downlink-mbit; default: no link model)")
    downlink_mbit: float | None = option(None, "modelled downlink rate in Mbit/s for time/comm_s (with "
                                               "--uplink-mbit)")
    rtt_ms: float | None = option(None, "modelled round-trip time in ms, charged once per reply the client "
                                        "waits for; >= 0")
    # How the device computes (bench/acceleration.py); the defaults are plain fp32 eager PyTorch.
    amp: str = option("off", "mixed precision: autocast of client and server (off keeps fp32 numerics)",
                      choices=AMP)
    channels_last: bool = option(False, "NHWC memory layout for the convolutions")
    compile: bool = option(False, "torch.compile the client and server networks")

    def __post_init__(self):
        self._check_names()
        self.partition_scheme().check()
        _link_model(self.uplink_mbit, self.downlink_mbit, self.rtt_ms)
        self._check_numbers()
        self._check_cache()
        layers = models.num_layers(self.model)
        if not 1 <= self.cut <= layers - 1:
            raise UsageError(f"cut: must be between 1 and {layers - 1} for {self.model}, got {self.cut}")
        self._type_policy_args()
        for stream, direction in enumerate(("quant_up", "quant_down")):
            self._type_codec_args(stream, direction)

    def _check_names(self) -> None:
        """Every field with a closed set of values holds one of them (registered names as installed now)."""
        for f in dataclasses.fields(self):
            if "choices" in f.metadata:
                _choice(f.name, getattr(self, f.name), f.metadata["choices"])
            elif "registry" in f.metadata:
                _registered(f.name, getattr(self, f.name), registry(f.metadata["registry"]))

    def _check_numbers(self) -> None:
        _at_least("width", self.width, 0, strict=True)
        _at_least("epochs", self.epochs, 1)
        _integer_at_least("eval_every", self.eval_every, 1)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("clients", self.clients, 1)
        _at_least("lr", self.lr, 0, strict=True)
        _at_least("momentum", self.momentum, 0)
        _at_least("weight_decay", self.weight_decay, 0)
        _at_least("warmup_epochs", self.warmup_epochs, 0)
        _at_least("lr_gamma", self.lr_gamma, 0, strict=True)
        if not (isinstance(self.label_smoothing, (int, float)) and not isinstance(self.label_smoothing, bool)
                and 0 <= self.label_smoothing < 1):
            raise UsageError(f"label_smoothing: must be a number >= 0 and < 1, got {self.label_smoothing!r}")
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) is not None:
                _at_least(name, getattr(self, name), 1)
        if self.subset_seed is not None:
            _at_least("subset_seed", self.subset_seed, 0)

    def _check_cache(self) -> None:
        """The gates and cache beyond the paper: each value in range, and per-sample refresh with what it needs."""
        _at_least("cache_mixup", self.cache_mixup, 0)
        _at_least("cache_noise", self.cache_noise, 0)
        if not (isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1):
            raise UsageError(f"val_fraction: must be a number >= 0 and < 1, got {self.val_fraction!r}")
        _integer_at_least("cache_views", self.cache_views, 1)
        if self.refresh_threshold is not None:
            _at_least("refresh_threshold", self.refresh_threshold, 0)
            if self.cache_views > 1 or self.cache_augment != "view":
                raise UsageError("refresh_threshold: per-sample refresh keeps one fixed view per sample; "
                                 "it needs cache_views = 1 and cache_augment = view")

    def _type_policy_args(self) -> None:
        from policies import POLICIES

        object.__setattr__(self, "policy_args", _typed_args("policy", POLICIES.get(self.policy), self.policy_args))
        if getattr(self.make_policy(), "signal", "train") == "val" and not self.val_fraction:  # validates it too
            raise UsageError("val_fraction: must be > 0 when policy.signal = val (the validation loss needs a slice)")

    def _type_codec_args(self, stream: int, direction: str) -> None:
        from quantizers import QUANTIZERS, arguments

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
        subsets.check_hold_out([len(s) for s in self.shards(ds.train_y)], self.val_fraction)
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
        hints = typing.get_type_hints(cls)
        for name in (f.name for f in dataclasses.fields(cls) if typing.get_origin(hints[f.name]) is tuple):
            fields[name] = tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in fields.get(name, ()))
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


def help_text(name: str) -> str:
    """What RunConfig field `name` means, as its declaration says."""
    return _field(name).metadata.get("help", "")


def allowed(name: str) -> list[str] | None:
    """The values RunConfig field `name` may take, as installed now (plugins may add names); None when
    its values are not a closed set."""
    metadata = _field(name).metadata
    if "choices" in metadata:
        return list(metadata["choices"])
    if "registry" in metadata:
        return registry(metadata["registry"]).names()
    return None


def mechanisms() -> dict[str, Any]:
    """The engine options that make a setting of their own when switched on, each with its "off" value."""
    return {f.name: f.metadata["off"] for f in dataclasses.fields(RunConfig) if "off" in f.metadata}


def inert(policy: str) -> frozenset[str]:
    """The RunConfig fields that cannot act under `policy`: the options that act only in FORWARD and
    CACHED epochs, when its class says `full_only` (it never leaves FULL); else none."""
    if not getattr(registry("policy").get(policy), "full_only", False):
        return frozenset()
    return frozenset(f.name for f in dataclasses.fields(RunConfig) if f.metadata.get("cache"))


def without_inert_choice(choice: dict[str, Any]) -> dict[str, Any]:
    """A setting's choice (policy, codecs, RunConfig fields) less the fields inert under its policy."""
    return {k: v for k, v in choice.items() if k not in inert(choice["policy"])}


def without_inert(cfg: RunConfig) -> RunConfig:
    """`cfg` as it trains, its inert fields back at their defaults: a sweep then sees one setting where
    only inert options differ, and trains it once. (Under `always`, cache_mixup and cache_noise change
    no bit; refresh_threshold's per-sample layout draws each FULL epoch's crops in another order, the
    same augmentation from another random stream: noise, not a mechanism.)"""
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    return dataclasses.replace(cfg, **{name: defaults[name] for name in inert(cfg.policy)})


def registry(kind: str):
    """The registry of components of `kind` ("policy", "codec", "transport")."""
    from bench.wire.transport import TRANSPORTS  # here: the wire's modules import RunConfig
    from policies import POLICIES
    from quantizers import QUANTIZERS

    return {r.kind: r for r in (POLICIES, QUANTIZERS, TRANSPORTS)}[kind]


def _field(name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(RunConfig) if f.name == name)


def _integer_at_least(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise UsageError(f"{name}: must be an integer >= {low}, got {value!r}")


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
