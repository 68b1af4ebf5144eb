"""Extraction in a reused child process with a per-page time limit: a page that overruns gets the child killed
and replaced, so one pathological page costs timeout_s, not the worker (transforms/extract.py has the extractors)."""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
from typing import NoReturn

from transforms.extract import (
    ExtractConfig, ExtractionTimeout, ExtractorCrashed, ExtractorFailed, extract_text,
)

# Modules the fork server imports once, so a (re)started child is ready in milliseconds instead of seconds.
_PRELOAD = ("transforms.extract", "transforms.extract_sandbox", "justext", "trafilatura",
            "resiliparse.extract.html2text")
_STARTUP_TIMEOUT_S = 120.0  # a child that has not imported its libraries by then is reported as crashed
_OK, _FAILED = b"o", b"e"  # first byte of a child's reply
_UTF8 = ("utf-8", "surrogatepass")  # how text crosses the pipe; a decoded page may hold lone surrogates


def _serve(conn: multiprocessing.connection.Connection, cfg: ExtractConfig) -> None:
    """Child loop: receive UTF-8 HTML, reply with a status byte and the text (or the error)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    extract_text("<html><body><p>warm up</p></body></html>", cfg)  # imports and stoplist before "ready"
    conn.send_bytes(_OK)
    while True:
        try:
            html = conn.recv_bytes().decode(*_UTF8)
        except (EOFError, ConnectionResetError):  # the parent closed its end (recycle, shutdown) or died
            return
        try:
            reply = _OK + extract_text(html, cfg).encode(*_UTF8)
        except Exception as exc:  # process boundary: forward any extractor error to the parent by type name
            reply = _FAILED + f"{type(exc).__name__}: {exc}".encode(*_UTF8)
        conn.send_bytes(reply)


def _preload_modules() -> list[str]:
    """Our libraries, and the main module, which each child re-runs as __mp_main__ (cheap once Beam is loaded).

    Only "__main__" names it: preloading its module name too (e.g. pipelines.werp) would import it twice and
    make runpy warn that the module is already in sys.modules."""
    return ["__main__", *_PRELOAD]


class SandboxedExtractor:
    """extract_text with a per-document time limit, in one reused child process (not thread-safe).

    signal.alarm cannot do this: signals reach only the main thread, Beam runs DoFns in worker threads, and a
    thread cannot be killed. So the parser runs in a "forkserver" child (fork would copy the locks of Beam's
    other threads), pages cross a Pipe as UTF-8 bytes, and a page that overruns gets the child replaced."""

    def __init__(self, cfg: ExtractConfig) -> None:
        self.cfg = cfg
        self.docs_in_child, self._ready = 0, False
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None

    def extract(self, html: str) -> str:
        """The page's text; raises ExtractionTimeout, ExtractorCrashed, ExtractorFailed or PageTooLarge."""
        too_large = self.cfg.max_html_chars is not None and len(html) > self.cfg.max_html_chars
        if self.cfg.timeout_s is None or too_large:  # in-process; a page too large raises without being shipped
            return extract_text(html, self.cfg)
        if self._proc is not None and self.docs_in_child >= self.cfg.max_docs_per_child:
            self._stop()
        conn = self._ready_child()
        self.docs_in_child += 1
        try:
            conn.send_bytes(html.encode(*_UTF8))
        except (BrokenPipeError, ConnectionResetError):  # the child died since the last document
            self._crashed("between documents")
        if not conn.poll(self.cfg.timeout_s):
            self._stop()
            self._start()  # now, so that its start-up overlaps the caller's other work
            raise ExtractionTimeout(f"extraction took longer than timeout_s ({self.cfg.timeout_s} s); "
                                    "the child was replaced. Raise extract.timeout_s to allow slower pages")
        reply = self._receive("while extracting")
        text = reply[1:].decode(*_UTF8)
        if reply[:1] == _FAILED:
            raise ExtractorFailed(text)
        return text

    def close(self) -> None:
        self._stop()  # a later extract() starts a new child

    def __enter__(self) -> SandboxedExtractor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The current child's process id, for tests and logs."""
        return None if self._proc is None else self._proc.pid

    def _start(self) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_preload_modules())  # has effect only before the fork server's first start
        self._conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_serve, args=(child_conn, self.cfg), daemon=True, name="extractor")
        try:
            proc.start()
        finally:
            child_conn.close()  # so that the child's death reads as EOF here
        self._proc, self.docs_in_child, self._ready = proc, 0, False

    def _ready_child(self) -> multiprocessing.connection.Connection:
        """Start a child if needed and wait for its warm-up, which does not count against timeout_s."""
        if self._proc is None:
            self._start()
        if not self._ready and not self._conn.poll(_STARTUP_TIMEOUT_S):
            self._stop()
            raise ExtractorCrashed(f"extractor child not ready after {_STARTUP_TIMEOUT_S} s; see its stderr")
        if not self._ready:
            self._ready = self._receive("while starting") == _OK
        return self._conn

    def _receive(self, when: str) -> bytes:
        try:
            return self._conn.recv_bytes()
        except (EOFError, ConnectionResetError):  # the child died; its end of the socket pair is gone
            self._crashed(when)

    def _crashed(self, when: str) -> NoReturn:
        self._proc.join(timeout=5)
        code = self._proc.exitcode
        self._stop()
        self._start()
        raise ExtractorCrashed(f"extractor child died {when} (exit code {code}); it was replaced")

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
            self._proc.close()
        self._proc, self._conn, self._ready = None, None, False
