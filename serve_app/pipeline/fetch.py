"""Safe download of a URL the client sent as `file` (API.md, Security).

Only http(s). The host is resolved once, every resolved address must be public (or inside a network
the deployment explicitly allows), and the connection goes to the address that was checked, never
a second lookup. Every redirect hop is checked again; redirects, size and time are capped.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Sequence, Union
from urllib.parse import urljoin, urlsplit

import httpx

from serve_app.errors import InvalidRequest, PayloadTooLarge
from serve_app.pipeline.cancel import check

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_REDIRECTS = {301, 302, 303, 307, 308}
# Longer URLs are refused before anything is parsed or looked up (browsers and CDNs stop near here too).
MAX_URL_CHARS = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Deprecated ranges that Python's `is_global` still calls global: the 6to4 relay anycast (RFC 7526)
# and IPv6 site-local (RFC 3879), both of which can land inside someone's network.
_ALSO_REFUSED = [ipaddress.ip_network("192.88.99.0/24"), ipaddress.ip_network("fec0::/10")]


def is_public_address(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses, looking through IPv4 embedded in IPv6."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 address itself
            return is_public_address(ip.ipv4_mapped)
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(embedded):
            return False
    if any(ip.version == net.version and ip in net for net in _ALSO_REFUSED):
        return False
    return bool(
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_unspecified
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_private
    )


def address_allowed(ip: IPAddress, allowed_networks: Sequence[IPNetwork]) -> bool:
    if is_public_address(ip):
        return True
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return any(ip in net or (mapped is not None and mapped in net) for net in allowed_networks)


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # as the client wrote it (for Host and TLS SNI)
    port: int
    address: IPAddress  # the checked address we connect to
    path: str

    @property
    def connect_url(self) -> str:
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def check_url(url: str) -> str:
    """The URL, stripped, after the checks that need no network (length, characters); InvalidRequest
    (400) otherwise. Run when the request is parsed and again on every redirect hop."""
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise _refused(f"it is longer than {MAX_URL_CHARS} characters")
    try:
        url.encode("utf-8")
    except UnicodeError:
        raise _refused("it is not valid text") from None
    if any(c <= " " or c == "\x7f" for c in url):
        raise _refused("it contains spaces or control characters")
    return url


def resolve_target(url: str, allowed_networks: Sequence[IPNetwork]) -> _Target:
    """Parse and check one hop; raise InvalidRequest (400) for anything unsafe."""
    try:
        parts = urlsplit(check_url(url))
        port = parts.port
    except ValueError:
        raise _refused("it is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _refused("only http and https URLs are fetched")
    if parts.username is not None or parts.password is not None:
        raise _refused("URLs with credentials (user:password@) are not supported")
    host = parts.hostname  # lower-cased, brackets stripped
    if not host:
        raise _refused("it has no host")
    try:
        # The name as DNS, the Host header and TLS see it (IDNA: "exämple.com" -> "xn--exmple-cua.com").
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise _refused("its host is not a valid domain name") from None
    port = port or (443 if scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise _refused(f"the host {host!r} does not resolve") from None
    addresses = _unique(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos)
    if not addresses:
        raise _refused(f"the host {host!r} does not resolve")
    # Every address must pass: a name that resolves to one public and one private address is refused.
    for address in addresses:
        if not address_allowed(address, allowed_networks):
            raise _refused("it points to a private, loopback or otherwise non-public address")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(scheme=scheme, host=host, port=port, address=addresses[0], path=path)


def fetch_url(
    url: str,
    *,
    max_bytes: int,
    allowed_networks: Sequence[IPNetwork] = (),
    max_redirects: int = 5,
    connect_timeout_s: float = 10.0,
    total_timeout_s: float = 120.0,
    stop: threading.Event | None = None,
) -> bytes:
    """Download `url` safely; return its body. Raise InvalidRequest / PayloadTooLarge (Cancelled once
    `stop` is set)."""
    deadline = time.monotonic() + total_timeout_s
    timeout = httpx.Timeout(connect=connect_timeout_s, read=min(30.0, total_timeout_s), write=10.0, pool=5.0)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=True) as client:
        for _ in range(max_redirects + 1):
            target = resolve_target(url, allowed_networks)
            headers = {"Host": target.host_header, "Accept-Encoding": "identity", "User-Agent": "serve-app/0.1"}
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            try:
                with client.stream("GET", target.connect_url, headers=headers, extensions=extensions) as resp:
                    if resp.status_code in _REDIRECTS:
                        location = resp.headers.get("location")
                        if not location:
                            raise _refused(f"it redirected (HTTP {resp.status_code}) without a Location")
                        url = urljoin(url, location)
                        continue
                    if resp.status_code >= 400:
                        raise _refused(f"the server answered HTTP {resp.status_code}")
                    return _read_capped(resp, max_bytes, deadline, stop)
            except httpx.TimeoutException:
                raise _refused("the server did not answer in time") from None
            except httpx.HTTPError as exc:
                raise _refused(f"the download failed ({type(exc).__name__})") from None
        raise _refused(f"it redirected more than {max_redirects} times")


def _read_capped(resp: httpx.Response, max_bytes: int, deadline: float, stop: threading.Event | None) -> bytes:
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _too_big(max_bytes)
    body = bytearray()
    for chunk in resp.iter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise _too_big(max_bytes)
        if time.monotonic() > deadline:
            raise _refused("the download took longer than this server's time limit")
        check(stop)
    if time.monotonic() > deadline:
        raise _refused("the download took longer than this server's time limit")
    return bytes(body)


def _unique(addresses: Iterable[IPAddress]) -> list[IPAddress]:
    out: list[IPAddress] = []
    for a in addresses:
        if a not in out:
            out.append(a)
    return out


def _refused(reason: str) -> InvalidRequest:
    return InvalidRequest(f"The URL in `file` was refused: {reason}.", param="file", code="invalid_url")


def _too_big(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file at the URL is larger than this server's download limit of {max_bytes} bytes.", param="file"
    )
