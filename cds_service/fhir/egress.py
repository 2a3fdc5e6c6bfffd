"""Where a FHIR read (and the EHR's access token with it) may go — decided before a byte leaves.

A hook request names its own ``fhirServer`` and hands us a bearer token for
it.  Without a policy any authenticated client could make the service send
that token to any host and use the answers as a port scanner (issue 13).  CDS
Hooks' security guidance expects a service to send tokens only to FHIR servers
it trusts, so there are two questions, answered here:

1. **May this caller name this server?**  ``ServerRule``: exact base URLs
   (``https://fhir.example.org/r4``) or origin patterns (``https://*.example.org``,
   ``http://127.0.0.1:*``), from the caller's issuer entry and the
   ``HER2CDS_FHIR_SERVERS`` setting.  Decided from the URL text alone, so the
   answer says nothing about the network.
2. **May we connect to the address the name resolves to?**  Public unicast
   addresses: yes.  Loopback, private, link-local, unspecified, reserved and
   multicast addresses: only inside a network allowed explicitly (the issuer's
   ``fhir_networks``, ``HER2CDS_FHIR_ALLOWED_NETWORKS``).  Cloud-metadata
   addresses and host names: never.  The check runs on the *resolved*
   addresses, every one of them, and ``EgressAdapter`` then connects to exactly
   those addresses — there is no second lookup a DNS-rebinding answer could
   swap in.  Odd numeric host forms (``2130706433``, ``0x7f.1``) are refused
   outright: they are never how a real FHIR base is written.

The adapter keeps the requests API (timeouts, streaming, error classes) and
only replaces how a socket is opened, the extension point urllib3 itself uses
for SOCKS (``_new_conn``); TLS still verifies the certificate against the
host *name*, because the pool keeps the name and only the socket is pinned.
It is the one transport for every outbound call (issues 19, 21): the hooks'
FHIR reads and the SMART app's discovery, token exchange and FHIR reads, each
with a total deadline (``watchdog``) and a size cap.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from . import watchdog

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddrInfo = tuple  # one getaddrinfo() entry: (family, type, proto, canonname, sockaddr)
Resolver = Callable[..., list]

DEFAULT_PORTS = {"http": 80, "https": 443}

#: Instance-metadata services (AWS, GCP, Azure, OCI, DigitalOcean: 169.254.169.254; AWS ECS
#: task metadata: 169.254.170.2; AWS IMDS over IPv6: fd00:ec2::254; Alibaba: 100.100.100.200).
#: They hand out cloud credentials to whoever asks from the machine, so no setting allows them.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200"))
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog",
                            "instance-data", "instance-data.ec2.internal"})

#: Plain http would carry the access token in clear; only this machine is exempt (tests, local FHIR).
_HTTP_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class EgressRefused(Exception):
    """The server or the address it resolves to is not allowed; the message is for the log."""


# --------------------------------------------------------------------------
# 1. Which servers a caller may name
# --------------------------------------------------------------------------

def _split_netloc(netloc: str) -> tuple[str, str | None]:
    """``host[:port]`` with IPv6 in brackets, the port kept as text (it may be ``*``)."""
    if "@" in netloc:
        raise ValueError("must not contain user info")
    if netloc.startswith("["):
        host, sep, rest = netloc[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("has a malformed IPv6 host")
        return host.lower(), rest[1:] if rest else None
    host, sep, port = netloc.partition(":")
    return host.lower().rstrip("."), port if sep else None


def _port(text: str | None, scheme: str, wildcard_ok: bool) -> int | None:
    if text is None or text == "":
        return DEFAULT_PORTS[scheme]
    if text == "*" and wildcard_ok:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"has an invalid port {text!r}")
    return int(text)


@dataclass(frozen=True)
class ServerRule:
    """One allowed FHIR server: an exact base URL, or an origin pattern when it has no path.

    ``https://fhir.example.org/r4`` allows exactly that base.
    ``https://fhir.example.org`` allows any base on that origin; ``https://*.example.org``
    any sub-domain of example.org (not example.org itself); ``:*`` any port.
    https only, except plain http to this machine (127.0.0.1, localhost, ::1).
    """

    text: str
    scheme: str
    host: str
    port: int | None  # None: any port
    path: str | None  # None: any base on this origin

    @classmethod
    def parse(cls, text: object) -> ServerRule:
        """Read one entry; ``ValueError`` says what is wrong with it."""
        if not isinstance(text, str) or not text:
            raise ValueError("must be a non-empty string")
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.netloc:
            raise ValueError("must start with https:// (or http:// for 127.0.0.1, localhost, ::1)")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        host, port_text = _split_netloc(parts.netloc)
        label = host[2:] if host.startswith("*.") else host
        if not label or "*" in label:
            raise ValueError("a wildcard may only be the leftmost label, as in *.example.org")
        if scheme == "http" and host not in _HTTP_HOSTS:
            raise ValueError("plain http is allowed only to 127.0.0.1, localhost or ::1 "
                             "(it would send the access token in clear)")
        path = parts.path.rstrip("/")
        return cls(text, scheme, host, _port(port_text, scheme, wildcard_ok=True), path or None)

    def matches(self, url: str) -> bool:
        return self.admits(normalize(url))

    def admits(self, target: tuple[str, str, int, str] | None) -> bool:
        """``matches`` for a base already passed through ``normalize`` (a policy checks many rules)."""
        if target is None:
            return False
        scheme, host, port, path = target
        if scheme != self.scheme or (self.port is not None and port != self.port):
            return False
        if self.host.startswith("*."):
            host_ok = host.endswith(self.host[1:])
        else:
            host_ok = host == self.host
        return host_ok and (self.path is None or path == self.path)


def normalize(url: str) -> tuple[str, str, int, str] | None:
    """``(scheme, host, port, path)`` of a FHIR base, or None when it is no plain http(s) URL."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.netloc or parts.query or parts.fragment:
            return None
        host, port_text = _split_netloc(parts.netloc)
        port = _port(port_text, scheme, wildcard_ok=False)
    except ValueError:
        return None
    if not host:
        return None
    return scheme, host, port, parts.path.rstrip("/")


def parse_rules(entries: Iterable[object], where: str) -> tuple[ServerRule, ...]:
    rules = []
    for i, entry in enumerate(entries):
        try:
            rules.append(ServerRule.parse(entry))
        except ValueError as exc:
            raise ValueError(f"{where}[{i}] {entry!r} {exc}") from None
    return tuple(rules)


def parse_networks(entries: Iterable[object], where: str) -> tuple[IPNetwork, ...]:
    """CIDR networks (``10.20.0.0/16``, ``127.0.0.1/32``, ``::1/128``) allowed although not public."""
    networks = []
    for i, entry in enumerate(entries):
        try:
            if not isinstance(entry, str):
                raise ValueError
            networks.append(ipaddress.ip_network(entry.strip(), strict=True))
        except ValueError:
            raise ValueError(f"{where}[{i}] {entry!r} is not a CIDR network such as 10.20.0.0/16") from None
    return tuple(networks)


def comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@dataclass(frozen=True)
class EgressPolicy:
    """Servers a caller may name and the non-public networks the service may connect to for it."""

    servers: tuple[ServerRule, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    def allows_server(self, base: str) -> bool:
        target = normalize(base)
        return any(rule.admits(target) for rule in self.servers)

    def union(self, other: EgressPolicy) -> EgressPolicy:
        return EgressPolicy(self.servers + other.servers, self.networks + other.networks)

    @classmethod
    def from_settings(cls, settings) -> EgressPolicy:
        """``HER2CDS_FHIR_SERVERS`` / ``HER2CDS_FHIR_ALLOWED_NETWORKS``; ``ValueError`` when malformed."""
        return cls(parse_rules(comma_list(settings.fhir_servers), "HER2CDS_FHIR_SERVERS"),
                   parse_networks(comma_list(settings.fhir_allowed_networks), "HER2CDS_FHIR_ALLOWED_NETWORKS"))


# --------------------------------------------------------------------------
# 2. Which addresses the service may connect to
# --------------------------------------------------------------------------

def _embedded_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address hidden in an IPv4-mapped, 6to4 or NAT64 IPv6 address (else ``ip``)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip.sixtofour:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_refusal(ip: IPAddress, networks: Sequence[IPNetwork]) -> str | None:
    """Why the service must not connect to ``ip`` (None: it may)."""
    inner = _embedded_ipv4(ip)
    if ip in METADATA_ADDRESSES or inner in METADATA_ADDRESSES:
        return "a cloud-metadata address (never allowed)"
    if any(ip in net or inner in net for net in networks if net.version in (ip.version, inner.version)):
        return None
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(inner, f"is_{kind}") or getattr(ip, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address (allow it with fhir_networks or HER2CDS_FHIR_ALLOWED_NETWORKS)"
    if not inner.is_global:
        return "not a public address (allow it with fhir_networks or HER2CDS_FHIR_ALLOWED_NETWORKS)"
    return None


def _is_odd_numeric_host(host: str) -> bool:
    """True for ``2130706433``, ``0177.0.0.1``, ``0x7f.1``: accepted by inet_aton, not canonical."""
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
        return True
    except OSError:
        return False


def resolve_checked(host: str, port: int, networks: Sequence[IPNetwork],
                    resolver: Resolver = socket.getaddrinfo) -> tuple[AddrInfo, ...]:
    """Resolve ``host`` once and return its addresses if *every* one is allowed.

    Raises ``EgressRefused`` (policy) or ``socket.gaierror`` (the name does not resolve).
    """
    name = host.lower().rstrip(".")
    if name in METADATA_HOSTS:
        raise EgressRefused(f"{name} is a cloud-metadata host name (never allowed)")
    if _is_odd_numeric_host(name):
        raise EgressRefused(f"{name!r} is a non-canonical numeric address")
    infos = resolver(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    checked: list[AddrInfo] = []
    for family, socktype, proto, canonname, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        why = address_refusal(ip, networks)
        if why:
            raise EgressRefused(f"{name} resolves to {ip}, {why}")
        entry = (family, socktype, proto, "", sockaddr)
        if entry not in checked:
            checked.append(entry)
    if not checked:
        raise EgressRefused(f"{name} has no IPv4/IPv6 address")
    return tuple(checked)


_current = threading.local()  # the watch of the exchange this thread is sending


class ResponseTooLarge(Exception):
    """The answer declared a body over the adapter's cap; it was not read."""


class _PinnedConnectionMixin:
    """A urllib3 connection that opens its socket to pre-checked addresses, never resolving again,
    and hands every socket it uses to the watch of the exchange (``watchdog``)."""

    def __init__(self, *args, addresses: tuple[AddrInfo, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self._addresses = addresses
        self.her2cds_watch: watchdog.Watch | None = None

    def connect(self) -> None:
        super().connect()
        if self.her2cds_watch is not None:
            self.her2cds_watch.attach(self.sock)  # after TLS: the socket the exchange reads

    def _new_conn(self) -> socket.socket:
        if not self._addresses:
            raise NameResolutionError(self.host, self, socket.gaierror("no checked address"))
        last: OSError | None = None
        for family, socktype, proto, _, sockaddr in self._addresses:
            sock = socket.socket(family, socktype, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if isinstance(self.timeout, (int, float)):
                    sock.settimeout(self.timeout)
                sock.connect(sockaddr)
                return sock
            except TimeoutError as exc:
                sock.close()
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
            except OSError as exc:
                sock.close()
                last = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {last}")


class PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


class _WatchedPool:
    """Connections carry the watch of the exchange using them; one whose watch expired is not reused."""

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        watch = getattr(_current, "watch", None)
        conn.her2cds_watch = watch
        if watch is not None and conn.sock is not None:  # a kept-alive connection: watch its socket too
            watch.attach(conn.sock)
        return conn

    def _put_conn(self, conn) -> None:
        if conn is not None:
            watch, conn.her2cds_watch = getattr(conn, "her2cds_watch", None), None
            if watch is not None and watch.finish():
                conn.close()  # the deadline shut its socket: the next exchange gets a fresh one
        super()._put_conn(conn)


class _PinnedHTTPPool(_WatchedPool, HTTPConnectionPool):
    ConnectionCls = PinnedHTTPConnection


class _PinnedHTTPSPool(_WatchedPool, HTTPSConnectionPool):
    ConnectionCls = PinnedHTTPSConnection


class EgressAdapter(HTTPAdapter):
    """The one transport for every outbound HTTP call to a FHIR or authorization server.

    Used by the hooks' ``FhirClient`` and by every SMART app exchange (SMART
    configuration, token, FHIR reads), so they share one set of guarantees:

    - **address check after DNS, pinned**: ``send(request, networks=…)``
      resolves the URL's host once, checks every address (``resolve_checked``:
      metadata always refused, non-public only inside ``networks``) and hands
      the connection pool exactly those addresses.  Pools are keyed by host
      *and* checked addresses, so a keep-alive connection is only ever reused
      for a caller whose policy allowed the same addresses;
    - **total deadline**: ``send(..., ends=…)`` (monotonic time), or
      ``deadline`` seconds from the send when the adapter has one, whichever
      is sooner; a watchdog shuts the socket down when it passes, in the
      status line, the headers or the body (``watchdog``);
    - **size cap**: an answer declaring a body over ``max_bytes`` is refused
      unread (``ResponseTooLarge``); callers stream bodies through
      ``capped_read`` with the same cap, for answers that do not declare it.

    No redirects are followed (callers pass ``allow_redirects=False``), no
    proxy from the environment is used.
    """

    def __init__(self, resolver: Resolver = socket.getaddrinfo, max_pools: int = 64,
                 pool_maxsize: int = 32, deadline: float | None = None, max_bytes: int | None = None):
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)
        self.resolver = resolver
        self.max_pools = max_pools
        self.deadline = None if deadline is None else float(deadline)
        self.max_bytes = max_bytes
        self._pool_size = pool_maxsize
        self._pools: OrderedDict[tuple, HTTPConnectionPool] = OrderedDict()
        self._pools_lock = threading.Lock()

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None, *,
             networks: Sequence[IPNetwork] = (), ends: float | None = None):
        parts = urlsplit(request.url)
        scheme = parts.scheme.lower()
        try:
            host, port_text = _split_netloc(parts.netloc)
            port = _port(port_text, scheme, wildcard_ok=False) if scheme in DEFAULT_PORTS else None
        except ValueError:
            port = None
        if port is None or not host:
            raise EgressRefused("not a plain http(s) URL")
        request.checked_addresses = resolve_checked(host, port, networks, self.resolver)
        if self.deadline is not None:
            own = time.monotonic() + self.deadline
            ends = own if ends is None else min(ends, own)
        watch = watchdog.watch(ends) if ends is not None else None
        _current.watch = watch
        try:
            response = super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies={})
        except BaseException:
            if watch is not None:
                watch.finish()
            raise
        finally:
            _current.watch = None
        if not stream and watch is not None:
            watch.finish()  # the body is read already
        declared = response.headers.get("Content-Length", "")
        if self.max_bytes is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise ResponseTooLarge(f"Content-Length {declared} is over the {self.max_bytes}-byte cap")
        return response

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        scheme, host, port = host_params["scheme"], host_params["host"], host_params["port"]
        addresses = request.checked_addresses  # set by send(); no pool without a checked address
        if scheme == "http":
            pool_kwargs = {}
        key = (scheme, host, port, addresses, tuple(sorted(pool_kwargs.items())))
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            cls = _PinnedHTTPSPool if scheme == "https" else _PinnedHTTPPool
            pool = cls(host, port, maxsize=self._pool_size, block=False, addresses=addresses, **pool_kwargs)
            self._pools[key] = pool
            while len(self._pools) > self.max_pools:
                _, old = self._pools.popitem(last=False)
                old.close()
            return pool

    def close(self):
        with self._pools_lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
        super().close()
