"""The ``Emulator`` facade: lifecycle, endpoint, scripts and snapshots."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from types import ModuleType, TracebackType

from ._backend import Backend
from ._outcomes import OUTCOME_TYPES, Outcome
from ._records import AcceptedMessage, RecordedRequest
from ._server import LoopbackServer
from ._tls import TlsMaterial, load_trustme, make_tls_material


class Emulator:
    """A loopback stand-in for the Dysmsapi 2018-05-01 ``SendMessageToGlobe`` endpoint.

    It verifies ACS3-HMAC-SHA256 signatures against ``access_keys`` (AccessKey
    id -> secret), accepts well-formed messages, answers like Alibaba's gateway
    for the rest, and plays back scripted outcomes. Use it as a context
    manager, or call ``start()`` and ``close()``::

        with Emulator(access_keys={"ID": "SECRET"}) as emu:
            config = Config(access_key_id="ID", access_key_secret="SECRET",
                            endpoint=emu.endpoint, protocol=emu.protocol)

    It listens on 127.0.0.1 only, on a port the OS picks unless ``port`` is
    given. With ``tls=True`` it serves HTTPS with a certificate from a private
    CA whose PEM file is ``ca_file`` (pass it to the SDK as ``Config(ca=...)``).
    ``clock`` (epoch seconds) is the server time for the ``x-acs-date`` window
    and nonce memory.
    """

    def __init__(
        self,
        *,
        access_keys: Mapping[str, str],
        tls: bool = False,
        clock: Callable[[], float] = time.time,
        port: int = 0,
    ) -> None:
        if not isinstance(access_keys, Mapping) or not access_keys:
            raise ValueError("access_keys must map at least one AccessKey id to its secret")
        for key_id, secret in access_keys.items():
            if (
                not isinstance(key_id, str)
                or not key_id
                or not isinstance(secret, str)
                or not secret
            ):
                raise ValueError("access_keys ids and secrets must be non-empty strings")
        if not callable(clock):
            raise TypeError("clock must be a callable returning epoch seconds")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) or 1-65535 (got {port!r})")
        self._trustme: ModuleType | None = load_trustme() if tls else None
        self._tls = tls
        self._port = port
        self._backend = Backend(access_keys, clock)
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None
        self._material: TlsMaterial | None = None
        self._closed = False
        self._lifecycle = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and start serving; return self. Raises RuntimeError when started or closed."""
        with self._lifecycle:
            if self._closed:
                raise RuntimeError("this Emulator is closed; create a new one")
            if self._server is not None:
                raise RuntimeError("this Emulator is already started")
            material = make_tls_material(self._trustme) if self._trustme is not None else None
            try:
                server = LoopbackServer(
                    self._backend,
                    port=self._port,
                    ssl_context=material.context if material is not None else None,
                )
            except BaseException:
                if material is not None:
                    material.remove()
                raise
            self._material = material
            self._server = server
            self._backend.host_id = f"127.0.0.1:{server.port}"
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"globesms-emulator-{server.port}",
                daemon=True,
            )
            self._thread.start()
            return self

    def close(self) -> None:
        """Stop serving, cut open connections and delays, remove TLS files. Idempotent."""
        with self._lifecycle:
            if self._closed:
                return
            self._closed = True
            self._backend.closing.set()
            server, thread, material = self._server, self._thread, self._material
            if server is not None:
                server.shutdown()
                server.server_close()
                server.close_connections()
            if thread is not None:
                thread.join()
            if material is not None:
                material.remove()

    def __enter__(self) -> Emulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._server else "new"
        where = f" endpoint={self.endpoint!r}" if self._server is not None else ""
        return f"<Emulator {state}{where} tls={self._tls}>"

    # -- where to reach it -------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``, for ``Config(endpoint=...)``."""
        if self._server is None:
            raise RuntimeError("the Emulator is not started: use start() or a with block")
        return f"127.0.0.1:{self._server.port}"

    @property
    def protocol(self) -> str:
        """``"https"`` when ``tls=True``, else ``"http"``, for ``Config(protocol=...)``."""
        return "https" if self._tls else "http"

    @property
    def ca_file(self) -> str | None:
        """Path of the CA certificate (PEM) to trust with ``tls=True``; None for plain HTTP."""
        if not self._tls:
            return None
        if self._material is None:
            raise RuntimeError("the Emulator is not started: the CA is made by start()")
        return self._material.ca_file

    @property
    def access_keys(self) -> dict[str, str]:
        """A copy of the AccessKey id -> secret map the emulator accepts."""
        return dict(self._backend.access_keys)

    # -- what happened -------------------------------------------------------------------

    @property
    def messages(self) -> list[AcceptedMessage]:
        """Accepted messages, oldest first (a snapshot)."""
        return self._backend.messages()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request that reached the server, oldest first (a snapshot)."""
        return self._backend.requests()

    # -- steering --------------------------------------------------------------------------

    def script(self, to: str | None, *outcomes: Outcome) -> None:
        """Queue outcomes for the next requests to ``to`` (digits as sent).

        Each verified request takes one outcome from its recipient's queue,
        or, when that is empty, from the global queue (``to=None``); with both
        empty it is handled normally.
        """
        if to is not None and not isinstance(to, str):
            raise TypeError(f"to must be the recipient as a string, or None (got {to!r})")
        for outcome in outcomes:
            if not isinstance(outcome, OUTCOME_TYPES):
                raise TypeError(f"not an outcome: {outcome!r} (use Accept, Reply, HttpError...)")
        self._backend.script(to, outcomes)

    def reset(self) -> None:
        """Forget messages, requests, scripts and seen nonces."""
        self._backend.reset()
