"""Run a segmentflow worker as a child process: for the demo, the
integration tests (which also kill -9 it) and the benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import aiohttp

from app.settings import Settings, secret_value

__all__ = ["WorkerProcess"]


class WorkerProcess:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        #: more environment for the worker (e.g. OTEL_* variables in tests)
        self.extra_env: dict[str, str] = {}

    def _env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update({
            "KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers,
            "SEGMENTFLOW_TOPIC_PREFIX": s.topic_prefix,
            "SEGMENTFLOW_PARTITIONS": str(s.partitions),
            "SEGMENTFLOW_DATA_DIR": str(s.data_dir),
            "SEGMENTFLOW_WEB_HOST": s.web_host,
            "SEGMENTFLOW_WEB_PORT": str(s.web_port),
            "SEGMENTFLOW_PROCESSING_GUARANTEE": s.processing_guarantee,
            "SEGMENTFLOW_CLOCK": s.clock,
            "SEGMENTFLOW_LOG_LEVEL": s.log_level,
            "SEGMENTFLOW_PRODUCER_LINGER_MS": str(s.producer_linger_ms),
            "SEGMENTFLOW_BATCH_MAX": str(s.batch_max),
            "SEGMENTFLOW_BATCH_WITHIN": str(s.batch_within),
            "SEGMENTFLOW_MAX_CONTACT_STATE_BYTES": str(s.max_contact_state_bytes),
            "SEGMENTFLOW_STATE_CACHE_BYTES": str(s.state_cache_bytes),
            "SEGMENTFLOW_API_OPEN_WRITES": str(s.api_open_writes).lower(),
            "SEGMENTFLOW_API_OPEN_READS": str(s.api_open_reads).lower(),
            "SEGMENTFLOW_API_MAX_BODY_BYTES": str(s.api_max_body_bytes),
            "SEGMENTFLOW_METRICS_SIZES_TTL": str(s.metrics_sizes_ttl),
            "SEGMENTFLOW_METRICS_SEGMENT_LABELS": str(s.metrics_segment_labels).lower(),
            "SEGMENTFLOW_API_WORKERS": str(s.api_workers),
            "SEGMENTFLOW_API_MAX_CONCURRENT": str(s.api_max_concurrent),
            "SEGMENTFLOW_API_WORK_TIMEOUT": str(s.api_work_timeout),
            "SEGMENTFLOW_API_PREVIEW_TIMEOUT": str(s.api_preview_timeout),
            "SEGMENTFLOW_API_DEFINITION_CHARS_PER_SECOND": str(
                s.api_definition_chars_per_second),
            "SEGMENTFLOW_CHANGES_FORMAT": s.changes_format,
            "SEGMENTFLOW_STANDBY_REPLICAS": str(s.standby_replicas),
            "SEGMENTFLOW_SESSION_TIMEOUT_MS": str(s.session_timeout_ms),
            "SEGMENTFLOW_ROLE": s.role,
        })
        for name, value in (("SEGMENTFLOW_API_TOKEN", s.api_token),
                            ("SEGMENTFLOW_API_READ_TOKEN", s.api_read_token)):
            if value is not None:
                env[name] = secret_value(value) or ""
            else:
                env.pop(name, None)
        if s.tracing is not None:
            env["SEGMENTFLOW_TRACING"] = s.tracing
        else:
            env.pop("SEGMENTFLOW_TRACING", None)
        env.update(self.extra_env)
        return env

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            env=self._env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    async def wait_ready(self, timeout: float = 90.0) -> float:
        """Wait for ``/ready``; returns the seconds waited."""
        start = time.monotonic()
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - start < timeout:
                if self._proc is not None and self._proc.poll() is not None:
                    raise RuntimeError(
                        f"worker exited with {self._proc.returncode}; see {self.log_path}"
                    )
                try:
                    async with session.get(self.url + "/ready", timeout=2) as response:
                        if response.status == 200:
                            return time.monotonic() - start
                except (TimeoutError, aiohttp.ClientError):
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout:.0f} s; see {self.log_path}")

    def kill(self) -> None:
        """kill -9: no shutdown, no commit, no flush — a crash."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
        self._close_log()

    def stop(self, timeout: float = 30.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
