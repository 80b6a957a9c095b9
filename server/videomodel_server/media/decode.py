"""Decode only the sampled frames, straight to the target size, in isolated worker processes.

Two halves:

* :func:`decode_frames` (runs in a worker): walks the stream once in presentation order,
  seeking forward over long gaps, and for each target time keeps the frame on screen at that
  instant, scaled by swscale directly from the decoder's YUV frame to the target RGB size
  (bicubic, like qwen-vl-utils' resize), then rotated. At most one full-resolution frame (the
  current candidate) is alive at a time; the output is preallocated ``(T, H, W, 3)`` uint8.
  Corrupt packets are skipped (up to a bound); a stream that ends long before its header said
  is refused as truncated rather than padded with repeats.
* :class:`DecodePool` (in the API process): a fixed set of ``spawn``-ed worker processes, each
  with an address-space limit (``RLIMIT_AS``) and no core dumps. A job gets the media as a
  file descriptor (``SCM_RIGHTS``), runs under a deadline, and is cancellable: on timeout or
  cancellation the worker is SIGKILLed and replaced. A worker that dies (decoder crash, OOM)
  fails only its own request, with a 4xx, and is replaced, so the next request works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import recv_handle, send_handle
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from .errors import DecodeMemory, DecodeTimeout, InvalidVideo, MediaError, MediaUnavailable
from .images import DecodedImage, ImageBudget, decode_image
from .limits import MediaLimits
from .probe import ProbeResult, open_container, read_probe
from .sampling import SamplingPlan

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

log = logging.getLogger(__name__)

SEEK_GAP_SECONDS = 1.0
"""Seek (to the keyframe before the target) instead of decoding through gaps longer than this;
seeking stops for the rest of a file as soon as one seek fails to move forward."""
MAX_CORRUPT_PACKETS = 32
WORKER_START_TIMEOUT = 60.0
TRUNCATION_SLACK = 0.1
"""A stream may end this fraction of its duration (or 1 s) before its last target."""


@dataclass(frozen=True)
class DecodedFrames:
    """Frames ``(T, H, W, 3)`` uint8 RGB, and each frame's actual time (stream clock, s)."""

    frames: npt.NDArray[np.uint8]
    times: tuple[float, ...]
    peak_rss_bytes: int = 0
    """The worker's peak resident set so far (ru_maxrss), for measurements."""
    frames_decoded: int = 0
    """Frames the decoder produced to find these (the work done; seeking lowers it)."""
    seeks: int = 0


# -- worker side ------------------------------------------------------------------------------


def decode_frames(file: IO[bytes], plan: SamplingPlan, threads: int = 1) -> DecodedFrames:
    """Decode the frames ``plan`` asks for from an open file (PyAV; worker process only)."""
    import av

    coded_w, coded_h = plan.coded_size
    out = np.empty((plan.nframes, plan.height, plan.width, 3), dtype=np.uint8)
    times: list[float] = []
    targets = plan.target_times
    eps = plan.tolerance
    k = 0  # next target to fill
    prev: VideoFrame | None = None
    prev_time = -1.0
    count = 0
    errors = 0
    seeks = 0

    def emit(frame: VideoFrame, t: float) -> None:
        nonlocal k
        rgb: npt.NDArray[Any] = frame.to_ndarray(width=coded_w, height=coded_h, format="rgb24", interpolation="BICUBIC")
        if plan.rotation:
            rgb = np.rot90(rgb, k=plan.rotation // 90)
        out[k] = rgb
        times.append(t)
        k += 1

    with open_container(file) as container:
        stream = container.streams[plan.stream_index]
        if not isinstance(stream, av.video.stream.VideoStream):
            raise InvalidVideo("the video stream changed between probe and decode")
        cc = stream.codec_context
        cc.thread_count = max(1, threads)
        cc.thread_type = "AUTO" if threads > 1 else "SLICE"
        tb = stream.time_base
        can_seek = True
        seek_origin: float | None = None
        last_seek_target = -1.0
        while k < plan.nframes:
            seek_to: float | None = None
            try:
                for packet in container.demux(stream):
                    try:
                        decoded = packet.decode()
                    except av.error.FFmpegError:
                        errors += 1
                        if errors > MAX_CORRUPT_PACKETS:
                            raise InvalidVideo("the video is corrupt: too many undecodable packets") from None
                        continue
                    for frame in decoded:
                        if not isinstance(frame, av.VideoFrame):
                            continue
                        if frame.pts is not None and tb is not None:
                            t = float(frame.pts * tb)
                        else:
                            t = plan.start_time + count / plan.source_fps
                        count += 1
                        # Every target before this frame is shown by the previous frame.
                        while k < plan.nframes and t > targets[k] + eps:
                            emit(prev if prev is not None else frame, prev_time if prev is not None else t)
                        if seek_origin is not None:
                            # First frame after a seek: if it did not land past where we were,
                            # keyframes are too sparse for seeking to pay off; stop seeking.
                            can_seek = can_seek and t > seek_origin
                            seek_origin = None
                        prev, prev_time = frame, t
                        if (
                            k < plan.nframes
                            and can_seek
                            and targets[k] - t > SEEK_GAP_SECONDS
                            and targets[k] != last_seek_target  # already landed on its keyframe
                        ):
                            seek_to = last_seek_target = targets[k]
                    if k >= plan.nframes or seek_to is not None:
                        break
            except av.error.FFmpegError:
                break  # the demuxer cannot go on: treat as the end of the stream (checked below)
            if seek_to is None or tb is None:
                break  # end of stream
            try:
                container.seek(int(seek_to / tb), stream=stream, backward=True, any_frame=False)
                seeks += 1
                seek_origin = prev_time
                prev = None  # the decoder was flushed: the frames after the seek are the candidates
            except av.error.FFmpegError:
                can_seek = False
        # End of stream: the last frame stays on screen for any targets left.
        try:
            for frame in stream.decode(None):
                t = float(frame.pts * tb) if frame.pts is not None and tb is not None else prev_time
                while k < plan.nframes and t > targets[k] + eps:
                    emit(prev if prev is not None else frame, prev_time if prev is not None else t)
                prev, prev_time = frame, t
        except av.error.FFmpegError:
            pass
        if prev is None and k == 0:
            raise InvalidVideo("no frame of the video could be decoded (corrupt or truncated)")
        slack = max(1.0, TRUNCATION_SLACK * plan.duration, 2 / plan.source_fps)
        if k < plan.nframes and prev_time < targets[-1] - slack:
            raise InvalidVideo(
                f"the video ends at {prev_time - plan.start_time:.1f} s but its header says "
                f"{plan.duration:.1f} s: the file is truncated or corrupt"
            )
        while k < plan.nframes:
            assert prev is not None
            emit(prev, prev_time)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return DecodedFrames(out, tuple(times), peak, count, seeks)


JobKind = Literal["probe", "decode", "image"]


def _worker_main(conn: Connection, memory_bytes: int | None, threads: int) -> None:
    """Worker process loop: receive a job and a file descriptor, answer ("ok"|"err", value)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    import av  # import after the limit so the limit covers FFmpeg's own allocations

    av.logging.set_level(av.logging.PANIC)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "stop":
            return
        fd = recv_handle(conn)
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
                else:
                    result = decode_frames(file, payload, threads)
            reply: tuple[str, Any] = ("ok", result)
        except MediaError as exc:
            reply = ("err", exc)
        except MemoryError:
            reply = ("err", DecodeMemory("decoding this video needs more memory than allowed (decode_memory_bytes)"))
        except Exception:  # a bug or an FFmpeg failure we did not anticipate: still the input's fault
            reply = ("err", InvalidVideo("the video could not be decoded"))
        if reply[0] == "ok" and isinstance(reply[1], DecodedFrames):
            # Frames go as raw bytes straight from the array (no pickle copy on either side).
            frames = np.ascontiguousarray(reply[1].frames)
            info = reply[1]
            conn.send(("frames", (frames.shape, info.times, info.peak_rss_bytes, info.frames_decoded, info.seeks)))
            _write_all(conn.fileno(), frames.data.cast("B"))
            del frames
        else:
            conn.send(reply)
        # Drop this job's arrays before waiting for the next one: peak memory is one job's.
        del reply
        result = None


def _write_all(fd: int, view: memoryview) -> None:
    """Raw bytes on the socket, straight from the array (Connection.send_bytes would add a
    header, and recv_bytes_into on the other side buffers a full copy first)."""
    while view:
        written = os.write(fd, view[: 1 << 22])
        view = view[written:]


def _read_exactly(fd: int, view: memoryview) -> None:
    while view:
        got = os.readv(fd, [view[: 1 << 22]])
        if got == 0:
            raise EOFError("decode worker closed the connection")
        view = view[got:]


# -- pool side ---------------------------------------------------------------------------------


class _Worker:
    def __init__(self, ctx: Any, memory_bytes: int | None, threads: int) -> None:
        parent, child = multiprocessing.Pipe(duplex=True)
        self.conn: Connection = parent
        self.process: BaseProcess = ctx.Process(
            target=_worker_main, args=(child, memory_bytes, threads), daemon=True, name="videomodel-decode"
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
        reply: tuple[str, Any] = self.conn.recv()
        if reply[0] == "frames":
            shape, times, peak, walked, seeks = reply[1]
            frames = np.empty(shape, dtype=np.uint8)
            _read_exactly(self.conn.fileno(), frames.data.cast("B"))
            return ("ok", DecodedFrames(frames, times, peak, walked, seeks))
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
    admission control bounds how many wait). ``memory_bytes`` is each worker's RLIMIT_AS.

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
        threads: int = 1,
        start_method: str = "spawn",
        recycle_after_jobs: int = 500,
    ) -> None:
        self._size = workers
        self._recycle_after = recycle_after_jobs
        self._memory = memory_bytes
        self._threads = threads
        self._ctx = multiprocessing.get_context(start_method)
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: set[_Worker] = set()
        self._executor = ThreadPoolExecutor(max_workers=2 * workers + 2, thread_name_prefix="decode-pool")
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self.stats = PoolStats()

    @classmethod
    def from_limits(cls, limits: MediaLimits) -> DecodePool:
        return cls(limits.decode_workers, memory_bytes=limits.decode_memory_bytes, threads=limits.decode_threads)

    @property
    def size(self) -> int:
        return self._size

    async def start(self) -> None:
        if self._idle is not None:
            return
        self._idle = asyncio.Queue()
        loop = asyncio.get_running_loop()
        for _ in range(self._size):
            worker = await loop.run_in_executor(self._executor, self._spawn)
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
        """Decode ``plan``'s frames from the media behind ``fd`` in a worker, within ``timeout`` s."""
        result = await self._run("decode", plan, fd, timeout, "decoding")
        assert isinstance(result, DecodedFrames)
        return result

    async def decode_image(self, fd: int, budget: ImageBudget, limits: MediaLimits) -> DecodedImage:
        """Decode and resize the image behind ``fd`` in a worker."""
        payload = (budget, limits.max_image_pixels)
        result = await self._run("image", payload, fd, limits.decode_timeout_seconds, "decoding")
        assert isinstance(result, DecodedImage)
        return result

    def _spawn(self) -> _Worker:
        worker = _Worker(self._ctx, self._memory, self._threads)
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
