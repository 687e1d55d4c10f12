"""Vetted fast paths for three hot spots of signature validation, each provably equivalent.

Installed once by :func:`install` (``signing.validate`` and ``signing.trust`` call it), and only
for the library versions they were checked against (:data:`VETTED`): with any other pyHanko,
pyhanko-certvalidator or asn1crypto nothing is replaced and validation runs the library code
unchanged, only slower.

1. **Hex strings** (``pyhanko.pdf_utils.generic.read_hex_string_from_stream``). pyHanko reads
   a hex string one byte at a time; a signature's ``/Contents`` is 16-64 KB of hex, about 20,000
   Python calls per signature. The replacement reads the bytes up to the first ``>`` in chunks
   and, *only* when everything before that ``>`` is hex digits and PDF white space, decodes it
   in one go: exactly what the byte loop computes for such input (white space skipped, an odd
   digit count padded with ``0``, ``pdf_string`` on the result, the stream left just after the
   ``>``). Anything else (a comment, a stray byte, no ``>`` before the end) rewinds the stream
   and runs pyHanko's own reader, so every malformed string fails with pyHanko's own error. It
   is active only inside :func:`fast_pdf_reading` (a context variable, so per task and thread);
   everywhere else the original runs.

2. **X.509 name comparison** (``asn1crypto.x509.NameTypeAndValue._ldap_string_prep``, the
   RFC 4518 string preparation behind ``Name.__eq__``). It is a pure function of its string
   argument (it never reads ``self``), so its results are memoized in a bounded LRU cache keyed by
   the string itself (``str`` is immutable; equal strings give equal results). Only ``str``
   values up to 256 characters are cached; failures (``ValueError`` for prohibited characters)
   are not cached and raise again each time, as before.

3. **Certificate path validation results** (see :class:`_PathCache`): the revocation and
   signature checks of a chain that was already validated, with the same inputs, a moment ago.
"""

from __future__ import annotations

import binascii
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

__all__ = [
    "REPLAY_OFFLINE",
    "VETTED",
    "ReplayMiss",
    "cache_stats",
    "clear_path_cache",
    "fast_pdf_reading",
    "install",
    "register_context",
]

#: The library versions these overrides were checked against (version prefixes).
VETTED = {
    "pyhanko": ("0.38.",),
    "pyhanko-certvalidator": ("0.33.",),
    "asn1crypto": ("1.5.",),
}

_INSTALL_LOCK = threading.Lock()
_installed: dict[str, bool] = {}


def _vetted(package: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package).startswith(VETTED[package])
    except PackageNotFoundError:
        return False


def install() -> dict[str, bool]:
    """Install the overrides whose library version is vetted (idempotent, thread-safe).

    Returns which fast path is active: ``hex``, ``name_prep``, ``path_cache``.
    """
    with _INSTALL_LOCK:
        if not _installed:
            _installed["hex"] = _vetted("pyhanko") and _install_hex_reader()
            _installed["name_prep"] = _vetted("asn1crypto") and _install_name_prep()
            _installed["path_cache"] = (
                _vetted("pyhanko-certvalidator") and _vetted("pyhanko") and _install_path_cache()
            )
        return dict(_installed)


# ----- 1. hex strings -------------------------------------------------------------------------

_FAST_HEX: ContextVar[bool] = ContextVar("lienthong_fast_hex", default=False)
_HEX_BODY = re.compile(rb"[0-9A-Fa-f \n\r\t\f\x00]*")  # pyhanko.pdf_utils.misc.PDF_WHITESPACE
_PDF_WHITESPACE = b" \n\r\t\f\x00"
_HEX_CHUNK = 1 << 16


@contextlib.contextmanager
def fast_pdf_reading() -> Iterator[None]:
    """Within this block (this task or thread only), hex strings are read by the fast reader."""
    token = _FAST_HEX.set(True)
    try:
        yield
    finally:
        _FAST_HEX.reset(token)


def _install_hex_reader() -> bool:
    from pyhanko.pdf_utils import generic, misc

    original = generic.read_hex_string_from_stream
    if getattr(original, "__lienthong_fast__", False):
        return True
    if misc.PDF_WHITESPACE != _PDF_WHITESPACE or generic.HEX_DIGITS != b"0123456789abcdefABCDEF":
        return False  # not the reader this was checked against

    def read_hex_string_from_stream(stream):
        if not _FAST_HEX.get():
            return original(stream)
        start = stream.tell()
        stream.read(1)  # the "<", skipped unread as pyHanko does
        body = bytearray()
        while True:
            chunk = stream.read(_HEX_CHUNK)
            if not chunk:
                break  # no ">" before the end: pyHanko's reader raises its own error
            end = chunk.find(b">")
            if end < 0:
                body += chunk
                continue
            body += chunk[:end]
            if _HEX_BODY.fullmatch(body):
                digits = bytes(body).translate(None, _PDF_WHITESPACE)
                if len(digits) % 2:
                    digits += b"0"
                stream.seek(start + 1 + len(body) + 1)
                return generic.pdf_string(binascii.unhexlify(digits))
            break  # a comment or a stray byte: let pyHanko decide (and raise)
        stream.seek(start)
        return original(stream)

    read_hex_string_from_stream.__lienthong_fast__ = True  # type: ignore[attr-defined]
    read_hex_string_from_stream.__wrapped__ = original  # type: ignore[attr-defined]
    generic.read_hex_string_from_stream = read_hex_string_from_stream
    return True


# ----- 2. name comparison ---------------------------------------------------------------------

_PREP_MAX_LEN = 256
_NAME_MAX_DER = 4096
_NAME_MEMO_MAX = 8192


class _Memo:
    """A bounded memo for pure functions of bytes keys (cleared whole when full)."""

    def __init__(self, limit: int) -> None:
        self._data: dict = {}
        self._limit = limit
        self.hits = self.misses = 0

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        try:
            value = self._data[key]
        except KeyError:
            pass
        else:
            self.hits += 1
            return value
        self.misses += 1
        value = compute()  # an exception propagates and nothing is kept
        if len(self._data) >= self._limit:
            self._data.clear()
        self._data[key] = value
        return value


_NAME_HASHABLE = _Memo(_NAME_MEMO_MAX)
_NAME_EQUAL = _Memo(_NAME_MEMO_MAX)


def _install_name_prep() -> bool:
    from asn1crypto import x509

    original = x509.NameTypeAndValue._ldap_string_prep
    if getattr(original, "__lienthong_fast__", False):
        return True
    hashable = x509.Name.hashable.fget
    equal = x509.Name.__eq__

    @functools.lru_cache(maxsize=8192)
    def prepared(string: str) -> str:
        return original(None, string)

    def _ldap_string_prep(self, string):
        if type(string) is str and len(string) <= _PREP_MAX_LEN:
            return prepared(string)
        return original(self, string)

    def name_hashable(self):
        try:
            der = self.dump()
        except Exception:  # noqa: BLE001 - not encodable: asn1crypto decides
            return hashable(self)
        if len(der) > _NAME_MAX_DER:
            return hashable(self)
        return _NAME_HASHABLE.get(der, lambda: hashable(self))

    def name_eq(self, other):
        if not isinstance(other, x509.Name):
            return False
        try:
            mine, theirs = self.dump(), other.dump()
        except Exception:  # noqa: BLE001 - not encodable: asn1crypto decides
            return equal(self, other)
        if len(mine) > _NAME_MAX_DER or len(theirs) > _NAME_MAX_DER:
            return equal(self, other)
        return _NAME_EQUAL.get((mine, theirs), lambda: equal(self, other))

    for fn, wrapped in (
        (_ldap_string_prep, original),
        (name_hashable, hashable),
        (name_eq, equal),
    ):
        fn.__lienthong_fast__ = True  # type: ignore[attr-defined]
        fn.__wrapped__ = wrapped  # type: ignore[attr-defined]
    _ldap_string_prep.cache_info = prepared.cache_info  # type: ignore[attr-defined]
    x509.NameTypeAndValue._ldap_string_prep = _ldap_string_prep
    x509.Name.hashable = property(name_hashable, doc=x509.Name.hashable.__doc__)
    x509.Name.__eq__ = name_eq
    return True


# ----- 3. path validation results -------------------------------------------------------------

#: Set while a cached result is replayed: the caching fetchers of :mod:`signing.trust` then
#: raise :class:`ReplayMiss` instead of going to the network.
REPLAY_OFFLINE: ContextVar[bool] = ContextVar("lienthong_replay_offline", default=False)


class ReplayMiss(Exception):
    """A replayed fetch would need the network: the cached result is not used."""


@dataclasses.dataclass(frozen=True)
class Fetch:
    """One revocation fetch made during a validation, as logged by a caching fetcher."""

    kind: str  # "ocsp" | "crl"
    cert: Any
    authority: Any  # OCSP only
    digest: tuple[bytes, ...] | None  # None: the fetch failed


@dataclasses.dataclass
class _Registration:
    """What :func:`register_context` knows of a validation context built by signing.trust."""

    profile: tuple  # hashable: anchors, revocation policy, algorithm policy, tolerance, fetching
    algorithm_policy: Any
    revinfo_policy: Any
    ocsp_fetcher: Any | None  # signing.trust caching fetchers, or None without fetching
    crl_fetcher: Any | None
    embedded: tuple | None = None  # (ids of the containers, their digests), memoized
    active: int = 0
    starts: int = 0


_REGISTERED: weakref.WeakKeyDictionary[Any, _Registration] = weakref.WeakKeyDictionary()
_REGISTER_LOCK = threading.Lock()


def register_context(
    vc: Any,
    *,
    anchors: frozenset[bytes],
    algorithms: str,
    ocsp_fetcher: Any | None,
    crl_fetcher: Any | None,
) -> None:
    """Let :class:`_PathCache` serve ``vc`` (a ValidationContext built by signing.trust).

    ``anchors`` are the SHA-256 fingerprints of the trust roots, ``algorithms`` names the
    algorithm policy object the context was given (checked again by identity on every use).
    Contexts that chase AIA certificates must not be registered: fetched certificates would be
    an input the cache key does not see.
    """
    if not _installed.get("path_cache"):
        return
    policy = vc.revinfo_policy
    rcp = policy.revocation_checking_policy
    profile = (
        anchors,
        algorithms,
        repr(rcp.ee_certificate_rule),
        repr(rcp.intermediate_ca_cert_rule),
        repr(policy.freshness_req_type),
        policy.freshness,
        policy.retroactive_revinfo,
        policy.expected_post_expiry_revinfo_time,
        vc.time_tolerance,
        vc.fetching_allowed,
        type(vc.sig_validator).__qualname__,
    )
    reg = _Registration(profile, vc.algorithm_policy, policy, ocsp_fetcher, crl_fetcher)
    with _REGISTER_LOCK:
        _REGISTERED[vc] = reg


def _ocsp_digest(resp: Any) -> bytes:
    return hashlib.sha256(resp.dump()).digest()


def _crl_digest(item: Any) -> bytes:
    return item.sha256


class _Uncacheable(Exception):
    """This validation's result must not be stored (a reason the key cannot capture)."""


@dataclasses.dataclass(frozen=True, eq=False)  # entries compare by identity
class _Entry:
    start: dt.datetime | None  # live validation: usable for moments in [start, end)
    end: dt.datetime | None
    fetches: tuple[Fetch, ...]
    validated: tuple[tuple[bytes, Any], ...]  # ValidationContext._validate_map additions
    crl_issuers: tuple[tuple[bytes, Any], ...]  # RevinfoManager._crl_issuer_map additions
    policies: Any  # the path's qualified policies


class _PathCache:
    """Successful path validations, per process, bounded; failures are never stored.

    Wraps ``pyhanko_certvalidator.async_validate_path`` (what ``find_valid_path`` calls for each
    candidate path, for the signer, the TSA, document timestamps) for validation contexts built
    by :mod:`signing.trust` only; any other context, or a call with PKIX parameters, goes
    straight to pyhanko-certvalidator.

    **The key** is everything the validation of one path reads:

    * the path: SHA-256 of the trust anchor's certificate and of every certificate to the leaf
      (an anchor with trust qualifiers, a path without a certificate, an attribute certificate
      is not cached);
    * the context's profile: trust-anchor fingerprints, the revocation-checking rules (mode),
      freshness rules, retroactive flag, time tolerance, whether fetching is allowed, the
      algorithm policy (by name, and by identity with the object the context was built with),
      the signature validator's type;
    * the certificates the context can use (SHA-256 of every certificate in its registry:
      the document's, the configured intermediates, the anchors; OCSP responder and CRL issuer
      certificates are looked up there);
    * the revocation data the document brought (SHA-256 of each embedded OCSP response and
      CRL) and what this context already fetched (per certificate, SHA-256 of the responses);
    * what this context already validated (``_validate_map`` keys, CRL issuers recorded), which
      lets pyhanko-certvalidator skip sub-checks;
    * the time: for a point-in-time validation the exact validation and signature times; for a
      validation "now", the entry carries a window instead (below).

    **Revocation data fetched during the validation** is not in the key but in the entry: each
    fetch (certificate, OCSP or CRL) and the SHA-256 of what it returned. An entry is used only
    when every one of those fetches would now be answered, without the network, by the process
    revocation cache (``signing.trust``) with byte-identical data; the fetches are then replayed
    through pyhanko-certvalidator's revocation manager with the network forbidden
    (:data:`REPLAY_OFFLINE`), so the context ends up holding exactly the responses (and the
    responder certificates they carry) a fresh validation would have fetched, and the report's
    revocation section is unchanged. If any replayed answer differs or would need the network,
    the entry is dropped and the path is validated for real.

    **The time window** (validation "now"): a result computed at ``t0`` is used for moments in
    ``[t0, end)``, ``end`` being the earliest of ``t0 + 60 s`` and every instant at or after
    ``t0`` where a time comparison pyhanko-certvalidator makes could change its outcome:
    ``e - tolerance``, ``e``, ``e + tolerance`` for each ``e`` among the notBefore/notAfter of
    every certificate the context holds (anchors and OCSP-embedded certificates included) and
    the thisUpdate/nextUpdate of every OCSP response and CRL it holds (nextUpdate absent: the
    30-minute fallback certvalidator uses). Revocation times do not move this window: outside
    point-in-time validation certvalidator treats any "revoked" as revoked, whatever its date.
    Within the window every comparison of the validation time has the outcome it had at ``t0``.

    **Never stored**: a validation that raised (expired, revoked, no revocation data, bad
    signature, ...), one that reported a soft-fail (an unreachable responder: once reachable it
    may say "revoked"), one where a fetch failed or its answer did not enter the revocation
    cache, one that ran while another validation was in flight on the same context, one that
    removed a recorded validation. A cached success therefore stands for a validation with
    identical inputs that succeeded; a failure is always recomputed.

    Entries expire with their window; the revocation cache bounds how long fetched data is
    reused (``revinfo_cache_seconds`` and each response's nextUpdate) and a changed answer
    changes the replay. :func:`clear_path_cache` (called by ``signing.trust.clear_caches``)
    forgets everything.
    """

    MAX_KEYS = 1024
    MAX_ENTRIES_PER_KEY = 4
    MAX_WINDOW = dt.timedelta(seconds=60)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, list[_Entry]] = OrderedDict()
        self.hits = self.misses = self.stores = self.replay_misses = 0

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = self.stores = self.replay_misses = 0

    # -- the key --

    @staticmethod
    def _path_key(path: Any) -> tuple | None:
        from asn1crypto import x509
        from pyhanko_certvalidator.authority import AuthorityWithCert, TrustQualifiers

        anchor = path.trust_anchor
        if anchor.trust_qualifiers != TrustQualifiers():
            return None
        authority = anchor.authority
        if not isinstance(authority, AuthorityWithCert) or path.pkix_len < 1:
            return None
        certs = list(path.iter_certs(include_root=False))
        if len(certs) != path.pkix_len or not all(isinstance(c, x509.Certificate) for c in certs):
            return None  # attribute certificate leaf
        return (authority.certificate.sha256, tuple(c.sha256 for c in certs))

    @staticmethod
    def _embedded(vc: Any, reg: _Registration) -> tuple:
        manager = vc.revinfo_manager
        ocsps, crls = manager._ocsps, manager._crls
        ids = (tuple(map(id, ocsps)), tuple(map(id, crls)))
        if reg.embedded is None or reg.embedded[0] != ids:
            digests = (
                tuple(_ocsp_digest(c.ocsp_response_data) for c in ocsps),
                tuple(sorted(_crl_digest(c.crl_data) for c in crls)),
            )
            reg.embedded = (ids, digests, list(ocsps), list(crls))  # keep ids alive
        return reg.embedded[1]

    def _key(self, vc: Any, reg: _Registration, path_key: tuple) -> tuple:
        manager = vc.revinfo_manager
        timing = vc.timing_params
        if timing.point_in_time_validation:
            when: tuple = (True, timing.validation_time, timing.best_signature_time)
        else:
            when = (False,)
        fetched = tuple(
            f.snapshot() if f is not None else None for f in (reg.ocsp_fetcher, reg.crl_fetcher)
        )
        return (
            reg.profile,
            path_key,
            frozenset(c.sha256 for c in vc.certificate_registry),
            self._embedded(vc, reg),
            fetched,
            frozenset(vc._validate_map),
            frozenset((k, v.sha256) for k, v in manager._crl_issuer_map.items()),
            when,
        )

    # -- the window --

    def _window(self, vc: Any, reg: _Registration) -> tuple[dt.datetime, dt.datetime]:
        from pyhanko_certvalidator.policy_decl import FRESHNESS_FALLBACK_VALIDITY_DEFAULT as FB

        t0 = vc.moment
        tol = vc.time_tolerance
        events: list[dt.datetime] = []
        try:
            certs = list(vc.certificate_registry)
            certs += list(vc.path_builder.trust_manager.iter_certs())
            for cert in certs:
                validity = cert["tbs_certificate"]["validity"]
                events += [validity["not_before"].native, validity["not_after"].native]
            ocsps = [c.ocsp_response_data for c in vc.revinfo_manager._ocsps]
            crls = [c.crl_data for c in vc.revinfo_manager._crls]
            for fetcher, bucket in ((reg.ocsp_fetcher, ocsps), (reg.crl_fetcher, crls)):
                if fetcher is not None:
                    bucket += fetcher.held()
            for resp in ocsps:
                if resp["response_status"].native != "successful":
                    continue
                tbs = resp.basic_ocsp_response["tbs_response_data"]
                for single in tbs["responses"]:
                    this, nxt = single["this_update"].native, single["next_update"].native
                    events += [this, nxt if nxt is not None else this + FB]
            for item in crls:
                tbs = item["tbs_cert_list"]
                this, nxt = tbs["this_update"].native, tbs["next_update"].native
                events += [this, nxt if nxt is not None else this + FB]
        except Exception as exc:  # noqa: BLE001 - cannot bound the window: do not store
            raise _Uncacheable from exc
        end = t0 + self.MAX_WINDOW
        for event in events:
            if event is None:
                raise _Uncacheable
            for bound in (event - tol, event, event + tol):
                if t0 <= bound < end:
                    end = bound
        return t0, end

    # -- lookup, replay, store --

    def _usable(self, entry: _Entry, vc: Any, reg: _Registration) -> bool:
        if entry.start is not None and not (entry.start <= vc.moment < entry.end):
            return False
        for fetch in entry.fetches:
            fetcher = reg.ocsp_fetcher if fetch.kind == "ocsp" else reg.crl_fetcher
            if fetcher is None or fetcher.peek_shared(fetch.cert) != fetch.digest:
                return False
        return True

    async def _replay(self, entry: _Entry, vc: Any, reg: _Registration, path: Any) -> bool:
        manager = vc.revinfo_manager
        token = REPLAY_OFFLINE.set(True)
        try:
            for fetch in entry.fetches:
                if fetch.kind == "ocsp":
                    await manager.async_retrieve_ocsps(fetch.cert, fetch.authority)
                    got = reg.ocsp_fetcher.mine_digest(fetch.cert)
                else:
                    await manager.fetch_crls(fetch.cert)
                    got = reg.crl_fetcher.mine_digest(fetch.cert)
                if got != fetch.digest:
                    return False
        except ReplayMiss:
            return False
        finally:
            REPLAY_OFFLINE.reset(token)
        vc._validate_map.update(entry.validated)
        manager._crl_issuer_map.update(entry.crl_issuers)
        path._set_qualified_policies(entry.policies)
        return True

    def _lookup(self, key: tuple, vc: Any, reg: _Registration) -> _Entry | None:
        with self._lock:
            entries = self._entries.get(key)
            if not entries:
                return None
            self._entries.move_to_end(key)
            candidates = list(entries)
        return next((e for e in candidates if self._usable(e, vc, reg)), None)

    def _drop(self, key: tuple, entry: _Entry) -> None:
        with self._lock:
            entries = self._entries.get(key)
            if entries and entry in entries:
                entries.remove(entry)

    def _store(self, key: tuple, entry: _Entry) -> None:
        with self._lock:
            entries = self._entries.setdefault(key, [])
            self._entries.move_to_end(key)
            entries.insert(0, entry)
            del entries[self.MAX_ENTRIES_PER_KEY :]
            while len(self._entries) > self.MAX_KEYS:
                self._entries.popitem(last=False)
            self.stores += 1

    async def validate(self, original: Callable, vc: Any, path: Any, parameters: Any) -> Any:
        reg = _REGISTERED.get(vc)
        if (
            reg is None
            or parameters is not None
            or vc.algorithm_policy is not reg.algorithm_policy
            or vc.revinfo_policy is not reg.revinfo_policy
            or vc.revinfo_manager._assertions  # non-revocation assertions: not keyed
            or (
                not vc.timing_params.point_in_time_validation
                and vc.timing_params.best_signature_time != vc.moment
            )
        ):
            return await original(vc, path, parameters)
        path_key = self._path_key(path)
        if path_key is None:
            return await original(vc, path, parameters)
        reg.starts += 1
        starts = reg.starts
        concurrent = reg.active > 0
        reg.active += 1
        try:
            key = self._key(vc, reg, path_key)
            if not concurrent:
                entry = self._lookup(key, vc, reg)
                if entry is not None:
                    if await self._replay(entry, vc, reg, path):
                        self.hits += 1
                        return path[path.pkix_len]
                    self.replay_misses += 1
                    self._drop(key, entry)
            self.misses += 1
            entry = await self._validate_for_real(original, vc, reg, path)
            if entry is not None and not concurrent and reg.starts == starts:
                self._store(key, entry)
            return path[path.pkix_len]
        finally:
            reg.active -= 1

    async def _validate_for_real(
        self, original: Callable, vc: Any, reg: _Registration, path: Any
    ) -> _Entry | None:
        """Run certvalidator; return the entry to store, or None when it must not be stored."""
        manager = vc.revinfo_manager
        validated_before = dict(vc._validate_map)
        issuers_before = dict(manager._crl_issuer_map)
        soft_fails = len(vc.soft_fail_exceptions)
        logs = [f.log for f in (reg.ocsp_fetcher, reg.crl_fetcher) if f is not None]
        marks = [len(log) for log in logs]
        await original(vc, path, None)  # raises on failure: nothing is stored
        try:
            if len(vc.soft_fail_exceptions) != soft_fails:
                return None
            fetches = tuple(f for log, mark in zip(logs, marks, strict=True) for f in log[mark:])
            for fetch in fetches:
                fetcher = reg.ocsp_fetcher if fetch.kind == "ocsp" else reg.crl_fetcher
                if fetch.digest is None or fetcher.peek_shared(fetch.cert) != fetch.digest:
                    return None  # failed, or not kept by the revocation cache: cannot replay
            after = vc._validate_map
            if any(k not in after for k in validated_before):
                return None
            issuers_after = manager._crl_issuer_map
            if any(k not in issuers_after for k in issuers_before):
                return None
            if vc.timing_params.point_in_time_validation:
                start = end = None
            else:
                start, end = self._window(vc, reg)
                if end <= start:
                    return None
            return _Entry(
                start=start,
                end=end,
                fetches=fetches,
                validated=tuple(
                    (k, v) for k, v in after.items() if validated_before.get(k) is not v
                ),
                crl_issuers=tuple(
                    (k, v) for k, v in issuers_after.items() if issuers_before.get(k) is not v
                ),
                policies=path.qualified_policies(),
            )
        except _Uncacheable:
            return None


_PATHS = _PathCache()


def clear_path_cache() -> None:
    """Forget every cached path validation."""
    _PATHS.clear()


def cache_stats() -> dict[str, int]:
    """Counters of the path cache (hits, misses, stores, replay misses) and the name-prep LRU."""
    stats = {
        "path_hits": _PATHS.hits,
        "path_misses": _PATHS.misses,
        "path_stores": _PATHS.stores,
        "path_replay_misses": _PATHS.replay_misses,
    }
    if _installed.get("name_prep"):
        from asn1crypto import x509

        info = x509.NameTypeAndValue._ldap_string_prep.cache_info()
        stats.update(name_prep_hits=info.hits, name_prep_misses=info.misses)
        stats.update(name_hashable_hits=_NAME_HASHABLE.hits, name_eq_hits=_NAME_EQUAL.hits)
    return stats


def _install_path_cache() -> bool:
    import pyhanko_certvalidator

    original = pyhanko_certvalidator.async_validate_path
    if getattr(original, "__lienthong_fast__", False):
        return True

    async def async_validate_path(validation_context, path, parameters=None):
        return await _PATHS.validate(original, validation_context, path, parameters)

    async_validate_path.__lienthong_fast__ = True  # type: ignore[attr-defined]
    async_validate_path.__wrapped__ = original  # type: ignore[attr-defined]
    # find_valid_path (used by CertificateValidator and pyHanko's validate_cert_usage) looks
    # this name up in the package namespace at call time.
    pyhanko_certvalidator.async_validate_path = async_validate_path
    return True
