"""Worker processes for probing and decoding: isolated, time-limited, memory-limited.

:class:`DecodePool` (in the API process) keeps a fixed set of ``spawn``-ed workers, each with an
private-memory limit (``RLIMIT_DATA``) and no core dumps. A job gets the media as a file
descriptor (``SCM_RIGHTS``), runs under a deadline, and is cancellable: on timeout or
cancellation the worker is SIGKILLed and replaced in the background. A worker that dies
(decoder crash, OOM) fails only its own request, with a 4xx, and is replaced, so the next
request works. Frames are decoded straight into shared memory the API process made for the
plan (a memfd, sent with the job): no copy crosses the process boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import mmap
import multiprocessing
import os
import resource
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import recv_handle, send_handle
from typing import IO, Any, Literal

import numpy as np

from .cache import VideoCache
from .decode import DecodedFrames, decode_frames, reset_peak_rss
from .errors import DecodeMemory, DecodeTimeout, InvalidVideo, MediaError, MediaUnavailable
from .frames import FramesJob, JpegFrames, decode_jpeg_frames
from .images import DecodedImage, ImageBudget, decode_image
from .limits import MediaLimits
from .probe import ProbeResult, read_probe
from .sampling import SamplingPlan
from .sandbox import confine

log = logging.getLogger(__name__)

WORKER_START_TIMEOUT = 60.0
"""Seconds a fresh worker may take to import its libraries and report ready."""

MAX_AUTO_THREADS = 16
"""``threads=0`` gives a lone decode one thread per usable CPU, up to this (FFmpeg's own cap)."""

JobKind = Literal["probe", "decode", "image", "frames"]


def _worker_main(conn: Connection, memory_bytes: int | None) -> None:
    """Worker process loop: receive a job and a file descriptor, answer ("ok"|"err", value)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes:
        # RLIMIT_DATA (private writable memory), not RLIMIT_AS: thread-heavy libraries reserve
        # address space they never touch (glibc's 64 MiB malloc arena per thread, OpenCV 5 on a
        # 16-core node), so an address-space cap failed every decode there while the memory
        # actually written stayed small. Reservations (PROT_NONE) do not count here; heap,
        # anonymous mmaps and thread stacks do. The shared output frames (a memfd) are sized
        # by the plan and do not count either.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    import av  # import after the limit so the limit covers FFmpeg's own allocations

    with contextlib.suppress(ImportError):
        import cv2  # decode.scale_frame's resizer: imported before the first job

        # One frame at a time is small work: OpenCV's own thread pool only fights FFmpeg's
        # frame threads for the same cores (measured: 1 thread resizes faster under load).
        cv2.setNumThreads(1)

    av.logging.set_level(av.logging.PANIC)
    confine()  # after the imports: no network, no files beyond the libraries (sandbox.py)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "stop":
            return
        fd = recv_handle(conn)
        reset_peak_rss()
        # The descriptor shares its offset with the parent's: always start from byte 0.
        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
        try:
            with os.fdopen(fd, "rb", buffering=1 << 16) as file:
                result: Any
                if kind == "probe":
                    limits, size = payload
                    result = read_probe(file, limits, size)
                elif kind == "image":
                    budget, max_image_pixels = payload
                    result = decode_image(file, budget, max_image_pixels)
                elif kind == "frames":
                    result = decode_jpeg_frames(file, payload)
                else:
                    plan, job_threads = payload
                    result = _decode_shared(file, plan, job_threads, recv_handle(conn))
            reply: tuple[str, Any] = ("ok", result)
        except MediaError as exc:
            reply = ("err", exc)
        except Exception as exc:  # every failure becomes an answer; the worker lives on
            reply = ("err", _failure(kind, exc))
        if reply[0] == "ok" and isinstance(reply[1], DecodedFrames):
            # The frames are already in the parent's shared memory: the record goes without them
            # (``_decode_shared`` left its ``frames`` empty); the parent puts its own view back.
            conn.send(("frames", reply[1]))
        else:
            conn.send(reply)
        # Drop this job's arrays before waiting for the next one: peak memory is one job's.
        del reply
        result = None


def _failure(kind: str, exc: BaseException) -> MediaError:
    """The client-facing error for an exception a job raised that is not a :class:`MediaError`.

    Running out of this worker's memory limit is the input's size (DecodeMemory, 422), however
    the library that hit it reports it: ``MemoryError``, or an ``OSError`` (PyAV's errors are
    ones) with ``ENOMEM`` anywhere in the exception's chain. Anything else is a bug or an FFmpeg
    failure we did not anticipate: still the input's fault, and logged with its type.
    """
    if _out_of_memory(exc):
        return DecodeMemory("decoding this video needs more memory than allowed (decode_memory_bytes)")
    log.warning("decode worker: %s job failed: %s: %s", kind, type(exc).__name__, exc)
    return InvalidVideo("the video could not be decoded")


def _out_of_memory(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _decode_shared(file: IO[bytes], plan: SamplingPlan, threads: int, out_fd: int) -> DecodedFrames:
    """Decode straight into the parent's shared memory (``out_fd``, sized for ``plan``)."""
    size = plan.nframes * plan.height * plan.width * 3
    try:
        try:
            shared = mmap.mmap(out_fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:  # ENOMEM: the frames alone pass this worker's address-space limit
            raise MemoryError from exc
        out = np.frombuffer(shared, dtype=np.uint8).reshape(plan.nframes, plan.height, plan.width, 3)
        try:
            decoded = decode_frames(file, plan, threads, out=out)
            # Everything but the frames (a view of the mapping, which is about to close).
            return replace(decoded, frames=np.empty((0,), np.uint8))
        finally:
            del out
            # A failed decode's traceback may still hold a view: then the mapping closes when
            # that goes (the pages are the parent's either way).
            with contextlib.suppress(BufferError):
                shared.close()
    finally:
        os.close(out_fd)


def shared_frames(plan: SamplingPlan) -> tuple[int, np.ndarray[Any, np.dtype[np.uint8]]]:
    """A memfd sized for ``plan``'s frames and the array mapped on it (the parent's side).

    The worker decodes into the same pages: the frames cross the process boundary without a
    copy (a 300 s clip at 2 fps is 400 MB, formerly written through a socket and read back).
    The array keeps the mapping alive; the descriptor is the caller's to close.
    """
    size = max(1, plan.nframes * plan.height * plan.width * 3)
    fd = os.memfd_create("videomodel-frames", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        shared = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        os.close(fd)
        raise
    frames = np.frombuffer(shared, dtype=np.uint8)[: plan.nframes * plan.height * plan.width * 3]
    return fd, frames.reshape(plan.nframes, plan.height, plan.width, 3)


# -- pool side ---------------------------------------------------------------------------------


class _Worker:
    def __init__(self, ctx: Any, memory_bytes: int | None) -> None:
        parent, child = multiprocessing.Pipe(duplex=True)
        self.conn: Connection = parent
        self.process: BaseProcess = ctx.Process(
            target=_worker_main, args=(child, memory_bytes), daemon=True, name="videomodel-decode"
        )
        self.process.start()
        child.close()
        self.jobs = 0

    def wait_ready(self, timeout: float) -> bool:
        """Block until the worker has imported its libraries (so no request pays for that)."""
        try:
            if self.conn.poll(timeout):
                return bool(self.conn.recv()[0] == "ready")
        except (EOFError, OSError):
            pass
        return False

    def call(self, kind: JobKind, payload: object, fd: int) -> tuple[str, Any]:
        """Blocking round trip (run in a thread). Raises EOFError/OSError if the worker dies."""
        self.conn.send((kind, payload))
        pid = self.process.pid
        assert pid is not None
        send_handle(self.conn, fd, pid)
        frames = None
        if kind == "decode":
            assert isinstance(payload, tuple) and isinstance(payload[0], SamplingPlan)
            out_fd, frames = shared_frames(payload[0])
            try:
                send_handle(self.conn, out_fd, pid)
                # Allocate the pages here while the worker decodes its first frames: its writes
                # then find them instead of faulting each 4 KiB page in (a 300 s clip's 422 MB:
                # 1.04 -> 0.88 s load, measured on 2 cores; shared memory gets no huge pages).
                with contextlib.suppress(OSError):
                    os.posix_fallocate(out_fd, 0, frames.nbytes)
            finally:
                os.close(out_fd)
        reply: tuple[str, Any] = self.conn.recv()
        if reply[0] == "frames":
            assert frames is not None and isinstance(reply[1], DecodedFrames)
            return ("ok", replace(reply[1], frames=frames))
        return reply

    def kill(self) -> None:
        """SIGKILL (non-blocking). A thread blocked in ``call`` then sees EOF and returns."""
        with contextlib.suppress(Exception):
            self.process.kill()

    def reap(self) -> None:
        """Wait for the killed process and close our end (blocking: run in a thread)."""
        with contextlib.suppress(Exception):
            self.process.join(timeout=10)
        with contextlib.suppress(Exception):
            self.conn.close()

    @property
    def alive(self) -> bool:
        return self.process.is_alive()


@dataclass
class PoolStats:
    jobs: int = 0
    replaced: int = 0
    timeouts: int = 0
    crashes: int = 0
    cancelled: int = 0


class DecodePool:
    """Worker processes for probing and decoding. Use ``async with DecodePool(...)`` or
    ``await pool.start()`` / ``await pool.close()``.

    ``workers`` processes run one job each at a time; further jobs wait their turn (the API's
    admission control bounds how many wait). ``memory_bytes`` is each worker's RLIMIT_DATA.
    ``threads``: CPU threads of a lone decode (FFmpeg's and the resizer's, see
    :func:`~.decode.decode_frames`), divided among the decodes running at once; 0 (the default of
    ``MediaLimits``): one per usable CPU. ``cache_bytes``:
    the size of :attr:`cache` (0, the default here, disables it; ``from_limits`` takes
    ``MediaLimits.decode_cache_bytes``).

    Workers are started with ``spawn`` (never ``fork``: the API process runs threads and an
    engine), so, as with vLLM, the program's entry point needs an
    ``if __name__ == "__main__":`` guard. Each worker imports PyAV once at start-up
    (about 1 s), before ``start()`` returns, so no request pays for it.
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        memory_bytes: int | None = 3 * 1024**3,
        threads: int = 0,
        start_method: str = "spawn",
        recycle_after_jobs: int = 500,
        cache_bytes: int = 0,
    ) -> None:
        self._size = workers
        self._recycle_after = recycle_after_jobs
        self._memory = memory_bytes
        self._threads = threads if threads > 0 else min(MAX_AUTO_THREADS, self.usable_cpus())
        self._ctx = multiprocessing.get_context(start_method)
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: set[_Worker] = set()
        self._executor = ThreadPoolExecutor(max_workers=2 * workers + 2, thread_name_prefix="decode-pool")
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self._decoding = 0
        self.stats = PoolStats()
        self.cache = VideoCache(cache_bytes)
        """Decoded videos for reuse (:func:`~.pipeline.load_video` reads and fills it); lives
        with the pool because both are made once per process, in the app lifespan."""

    @classmethod
    def from_limits(cls, limits: MediaLimits) -> DecodePool:
        return cls(
            limits.decode_workers,
            memory_bytes=limits.decode_memory_bytes,
            threads=limits.decode_threads,
            cache_bytes=limits.decode_cache_bytes,
        )

    @staticmethod
    def usable_cpus() -> int:
        """CPUs this process may run on (its affinity mask; the container's cpuset)."""
        try:
            return len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return os.cpu_count() or 1

    @property
    def size(self) -> int:
        return self._size

    async def start(self) -> None:
        if self._idle is not None:
            return
        self._idle = asyncio.Queue()
        loop = asyncio.get_running_loop()
        # Start all workers at once: each spends about a second importing PyAV and NumPy.
        workers = await asyncio.gather(*(loop.run_in_executor(self._executor, self._spawn) for _ in range(self._size)))
        for worker in workers:
            self._idle.put_nowait(worker)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for worker in list(self._all):
            worker.kill()
        for worker in list(self._all):
            worker.reap()  # SIGKILLed: returns at once
        self._all.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> DecodePool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._all if w.process.pid is not None]

    async def probe(self, fd: int, limits: MediaLimits, *, size: int = 0) -> ProbeResult:
        """Probe the media behind ``fd`` in a worker (header checks against ``limits``)."""
        result = await self._run("probe", (limits, size), fd, limits.decode_timeout_seconds, "probing")
        assert isinstance(result, ProbeResult)
        return result

    async def decode(self, fd: int, plan: SamplingPlan, timeout: float) -> DecodedFrames:
        """Decode ``plan``'s frames from the media behind ``fd`` in a worker, within ``timeout`` s.

        Threads for this job: the pool's ``threads`` divided among the decodes running or waiting
        when it is sent (a lone request decodes on every core; busy workers share the cores
        instead of each starting a thread per core and fighting over them)."""
        self._decoding += 1
        try:
            threads = max(1, self._threads // min(self._decoding, self._size))
            result = await self._run("decode", (plan, threads), fd, timeout, "decoding")
        finally:
            self._decoding -= 1
        assert isinstance(result, DecodedFrames)
        return result

    async def decode_image(self, fd: int, budget: ImageBudget, limits: MediaLimits) -> DecodedImage:
        """Decode and resize the image behind ``fd`` in a worker."""
        payload = (budget, limits.max_image_pixels)
        result = await self._run("image", payload, fd, limits.decode_timeout_seconds, "decoding")
        assert isinstance(result, DecodedImage)
        return result

    async def decode_frame_sequence(self, fd: int, job: FramesJob, timeout: float) -> JpegFrames:
        """Decode and resize the JPEG frames ``job`` names from the file behind ``fd`` in a worker
        (header checks before pixels; see :func:`~.frames.decode_jpeg_frames`)."""
        result = await self._run("frames", job, fd, timeout, "decoding the frames of")
        assert isinstance(result, JpegFrames)
        return result

    def _spawn(self) -> _Worker:
        worker = _Worker(self._ctx, self._memory)
        if not worker.wait_ready(WORKER_START_TIMEOUT):
            worker.kill()
            raise MediaUnavailable("a decode worker failed to start")
        with self._lock:
            self._all.add(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        """Kill ``worker`` and start a replacement in the background (the caller need not wait)."""
        worker.kill()
        with self._lock:
            self._all.discard(worker)
        self.stats.replaced += 1
        task = asyncio.get_running_loop().create_task(self._respawn(worker))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respawn(self, dead: _Worker) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(RuntimeError):
            await loop.run_in_executor(self._executor, dead.reap)
        if self._closed:
            return
        for attempt in range(5):
            try:
                fresh = await loop.run_in_executor(self._executor, self._spawn)
            except RuntimeError:  # executor shut down: the pool is closing
                return
            except MediaUnavailable:
                log.error("decode worker failed to start (attempt %d)", attempt + 1)
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            if self._closed or self._idle is None:
                fresh.kill()
                return
            self._idle.put_nowait(fresh)
            return

    async def _run(self, kind: JobKind, payload: object, fd: int, timeout: float, what: str) -> object:
        if self._closed:
            raise MediaUnavailable("the decode pool is shut down")
        await self.start()
        assert self._idle is not None
        if not self._all and not self._tasks:
            raise MediaUnavailable("no decode worker is running")
        worker = await self._idle.get()
        while not worker.alive:
            self._retire(worker)
            worker = await self._idle.get()
        self.stats.jobs += 1
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        job = loop.run_in_executor(self._executor, worker.call, kind, payload, fd)
        healthy = False
        try:
            status, value = await asyncio.wait_for(job, timeout)
            healthy = True
        except TimeoutError:
            self.stats.timeouts += 1
            raise DecodeTimeout(f"{what} the video took longer than {timeout:g} s (decode_timeout_seconds)") from None
        except asyncio.CancelledError:
            self.stats.cancelled += 1
            raise
        except (EOFError, OSError, BrokenPipeError):
            self.stats.crashes += 1
            log.warning("decode worker died while %s (exit code %s)", what, worker.process.exitcode)
            raise InvalidVideo(f"the decoder crashed while {what} this video") from None
        finally:
            worker.jobs += 1
            if healthy and worker.jobs < self._recycle_after:
                self._idle.put_nowait(worker)
            elif healthy:
                self._retire(worker)  # bound slow growth (allocator fragmentation) of long-lived workers
            else:
                # Timed out, cancelled or dead: the worker may be mid-job; kill it so the
                # blocked thread returns, and start a fresh one.
                self._retire(worker)
        log.debug("%s job took %.3f s", kind, time.monotonic() - started)
        if status == "err":
            assert isinstance(value, MediaError)
            raise value
        return value
