"""Error feedback: the sender keeps what its codec could not send and adds it to its next message.

For a message x (Seide et al., 2014, "1-bit SGD"; Karimireddy et al., 2019, "EF-SGD"):
    v = x + r[shape]               in float32 (r[shape] = 0 when there is none yet)
    payload = inner.encode(v)
    r[shape] = v - inner.decode(payload, like=v)   # what the receiver did not get
so that, in float32, decode(payload) + r_new == x + r_old exactly whenever the decoded value of each
element is 0 or within a factor 2 of it (Sterbenz), which holds for round-to-nearest formats below
their saturation and for sparsifiers. One residual per message shape: the next message of the same
shape (the next batch of activations or of gradients, the short last batch apart) carries it.
The state lives at the sending end; decoding needs none.

When the residual is cleared (`reset()`, by each end of a link in bench/wire/link.py and bench/server.py):
    - at the start of every epoch in which a client sends (FULL or FORWARD), in both directions
      (the client's up codec as the epoch starts, the server's down codec at its first batch).
      That is when the server's cache of that client is refreshed, and it comes right after the
      client fetched any newer average of the client networks. So a residual never outlives the
      network (activations) or the cached epoch (gradients, whose server has since moved on) it was
      made for, and each cache holds what one epoch sent. CACHED epochs send nothing and keep it.
    - before each test batch of an evaluation: test messages are independent, so evaluation
      measures the inner codec itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from quantizers.codec import Codec, Payload


@dataclass
class ErrorFeedback:
    """Wrap `inner` (any codec instance) with error feedback; see the module docstring."""

    inner: Codec

    stateful: ClassVar[bool] = True

    def __post_init__(self):
        self._residuals: dict[tuple[int, ...], torch.Tensor] = {}

    def encode(self, x: torch.Tensor) -> Payload:
        key = tuple(x.shape)
        v, residual = x.detach().float(), self._residuals.get(key)
        # v, then the new residual, live where the old residual did: no fresh buffer (and its page
        # faults) per message. Unless the payload holds v itself, as a lossless inner codec's may.
        reuse = residual is not None
        if reuse:
            v = torch.add(v, residual, out=residual)
        payload = self.inner.encode(v)
        reuse = reuse and all(t.untyped_storage().data_ptr() != v.untyped_storage().data_ptr()
                              for t in payload.tensors.values())
        self._residuals[key] = torch.sub(v, self.inner.decode(payload, like=v), out=v if reuse else None)
        return payload

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        return self.inner.decode(p, like)

    def residual(self, shape: tuple[int, ...]) -> torch.Tensor | None:
        """What the next message of `shape` will carry on top of itself (None: nothing yet): a copy,
        since the next message overwrites the residual in place."""
        residual = self._residuals.get(tuple(shape))
        return None if residual is None else residual.clone()

    def reset(self) -> None:
        self._residuals.clear()
