"""Throw-away TLS material for ``tls=True``: a private CA and a 127.0.0.1 certificate."""

from __future__ import annotations

import importlib
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from types import ModuleType

_MISSING = (
    "tls=True needs trustme (the emulator extra; globesms is not on PyPI): in a globesms"
    " checkout run pip install -e '.[emulator]', or pip install"
    " 'globesms[emulator] @ git+<globesms repository URL>'"
)


def load_trustme() -> ModuleType:
    """Import ``trustme`` (an optional extra), or raise an ImportError that says how to get it."""
    try:
        return importlib.import_module("trustme")
    except ImportError as error:
        raise ImportError(_MISSING) from error


@dataclass(frozen=True)
class TlsMaterial:
    """A server context and the CA file a client must trust, in a private temp dir."""

    context: ssl.SSLContext
    ca_file: str
    directory: str

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def make_tls_material(trustme: ModuleType, host: str = "127.0.0.1") -> TlsMaterial:
    """Issue a CA and a server certificate for 127.0.0.1, localhost and ``host``."""
    authority = trustme.CA(organization_name="globesms emulator")
    names = dict.fromkeys(("127.0.0.1", "localhost", host))
    leaf = authority.issue_cert(*names)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    leaf.configure_cert(context)
    directory = tempfile.mkdtemp(prefix="globesms-emulator-")
    ca_file = os.path.join(directory, "ca.pem")
    authority.cert_pem.write_to_path(ca_file)
    return TlsMaterial(context=context, ca_file=ca_file, directory=directory)
