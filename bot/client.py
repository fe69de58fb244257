"""The bot, and the only wiring: at start-up it builds the data dir, the store, the fair queue, the
job board, the poster, the lifecycle, admission and the worker pool, and hands each its
collaborators. No other module but `__main__` and the cogs names `RestyleBot` (tests/test_layout.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import discord
from discord import app_commands
from discord.ext import commands

from bot.admission import Admission
from bot.config import BotConfig
from bot.fair_queue import FairQueue
from bot.files import DataDir
from bot.jobs import JobBoard
from bot.lifecycle import Lifecycle, LoopBridge
from bot.posting import Poster
from bot.replies import refuse
from bot.store import Store
from bot.views import DYNAMIC_ITEMS
from bot.worker.loading import EngineLoader, Separator
from bot.worker.local import GpuWorker
from bot.worker.pool import WorkerPool
from bot.worker.runner import Engines, RenderSettings
from generation.audio.mastering import MasteringOptions
from generation.errors import RestyleError
from generation.families import family_for
from generation.interface import Engine

log = logging.getLogger(__name__)

# How long a shutdown waits for results finished at the last moment to be saved and posted.
SHUTDOWN_DRAIN_S = 30.0
# Loaded in this order in setup_hook; each module has its own setup().
EXTENSIONS = ("bot.cogs.restyle", "bot.cogs.queue", "bot.cogs.voting", "bot.cogs.maintenance")


class RestyleBot(commands.Bot):
    def __init__(
        self,
        config: BotConfig,
        *,
        load_engine: Callable[[str], Engine] | None = None,
        start_worker: bool = True,
    ) -> None:
        # Restyle never joins a voice channel: discord.py's warnings about voice libraries are noise.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        # Default intents carry guilds and reactions; Restyle needs no message content.
        super().__init__(
            command_prefix=commands.when_mentioned, intents=discord.Intents.default(), help_command=None
        )
        self.config = config
        self.files = DataDir(config.bot.data_dir)
        self.queue = FairQueue(config.limits.max_queue)
        self.jobs = JobBoard(self.queue, self.seconds_per_step, stems=config.models.stems)
        self.store: Store
        self.poster: Poster
        self.lifecycle: Lifecycle
        self.admission: Admission
        self.worker: WorkerPool | None = None
        self.bridge: LoopBridge | None = None
        self._engine_loader = load_engine or EngineLoader(config.models)  # pickles, for Ray workers
        self._load_engine = load_engine or self._load_configured_engine
        self._start_worker = start_worker
        self._ready_once = False
        self._separator = Separator(config.models)  # loaded on the GPU thread, on first use
        self._device: str | None = None  # found on first use (`_device_type`)

    async def setup_hook(self) -> None:
        self.files.create()
        self.store = await Store.open(self.files.database)
        self.poster = Poster(self, self.store, self.files, self.jobs)
        self.lifecycle = Lifecycle(
            self.config, self.store, self.files, self.jobs, self.poster, stop_running=self._stop_running
        )
        self.admission = Admission(self.config, self.store, self.files, self.jobs, self.lifecycle)
        self.worker = self._make_worker()
        self.tree.on_error = self.on_app_command_error
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        await self.restore_jobs()
        if self._start_worker:
            await self.start_worker()
        await self.sync_commands()

    def _make_worker(self) -> WorkerPool:
        output = self.config.output
        settings = RenderSettings(
            format_name=output.format,
            bitrate=output.bitrate_kbps * 1000,
            mastering=MasteringOptions(target_lufs=output.loudness_lufs, true_peak_db=output.true_peak_db),
            progress_interval_s=self.config.progress.edit_interval_seconds,
        )
        self.bridge = LoopBridge(self.loop, self.lifecycle)
        if self.config.workers.backend == "ray":
            from bot.worker.ray.pool import make_ray_pool

            return make_ray_pool(
                self.config,
                self.queue,
                self.jobs.order,
                self.bridge,
                settings=settings,
                load_engine=self._engine_loader,
            )
        return GpuWorker(
            self.queue,
            self.jobs.order,
            Engines(self._load_engine),
            self.bridge,
            settings,
            max_rows=self.config.limits.batch_rows,
            separate=self._separator if self.config.models.stems else None,
            layer_separator=self._separator.load,  # loaded when a loop first asks for layers
        )

    def _load_configured_engine(self, model: str) -> Engine:
        models = self.config.models
        engine = self._engine_loader(model)
        if model == models.default and models.stems and engine.reads_melody:  # ready before the first job
            self._separator.load()  # (on the GPU thread)
        return engine

    async def start_worker(self) -> None:
        """Start the GPU thread once the default model is loaded (on that thread): a model that
        cannot load stops start-up with its message."""
        assert self.worker is not None
        await asyncio.wrap_future(self.worker.start(preload=[self.config.models.default]))

    async def restore_jobs(self) -> None:
        """Rebuild the queue from the database: interrupted jobs first, then the waiting ones in order."""
        if dropped := await self.store.drop_reservations():  # requests never recorded: asked again
            log.info("dropped %d requests a restart interrupted before they were recorded", dropped)
        interrupted = {job.id for job in await self.store.jobs_with_status("running")}
        await self.store.requeue_running()
        for job in await self.store.jobs_with_status("queued"):
            self.jobs.enqueue(job, first=job.id in interrupted, recovered=True)
        if interrupted:
            log.info("restarting interrupted jobs %s", sorted(interrupted))

    async def sync_commands(self) -> None:
        guilds = self.config.bot.sync_guilds
        if not guilds:
            await self.tree.sync()
            return
        for guild_id in guilds:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)

    async def on_ready(self) -> None:
        if self._ready_once:
            return
        self._ready_once = True
        log.info("ready as %s in %d servers", self.user, len(self.guilds))
        await self.lifecycle.publish_pending()  # finished before a restart, not yet posted
        self.dispatch("restyle_ready")

    def _stop_running(self, job_id: int) -> bool:
        """Ask the worker pool to stop a job it holds (the lifecycle's Cancel)."""
        return self.worker is not None and self.worker.cancel(job_id)

    def seconds_per_step(self, model: str | None, duration_s: float) -> float:
        """`model`'s measured seconds per step (None: the default model's); before any job of it
        was timed, the config's guess if it sets one, else its family's first guess for this
        device and a `duration_s` job (an ACE-Step step covers the whole piece: it grows with it)."""
        model = model or self.config.models.default
        measured = self.worker.seconds_per_step if self.worker is not None else {}
        if model in measured:
            return measured[model]
        guess = self.config.progress.seconds_per_step_guess
        if guess is not None:
            return guess
        return family_for(model).first_guess_step_s(model, self._device_type(), duration_s)

    def _device_type(self) -> str:
        """The kind of device the jobs run on ("cpu", "cuda", "mps"), for the first guesses."""
        if self._device is None:
            workers = self.config.workers
            if workers.backend == "ray":  # the workers' machines, not this one
                self._device = "cuda" if workers.gpus_per_worker > 0 else "cpu"
            else:
                from generation.devices import pick_device  # (torch: the worker loads it anyway)

                try:
                    self._device = pick_device(self.config.models.device).type
                except RestyleError:  # a device this machine lacks stops start-up elsewhere
                    self._device = "cpu"
        return self._device

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        log.error("command %s failed", interaction.command and interaction.command.name, exc_info=error)
        await refuse(interaction, "Something went wrong on our side; it has been logged.")

    async def close(self) -> None:
        if self.worker is not None and self.bridge is not None:
            await asyncio.to_thread(self.worker.stop)
            try:  # results finished during the stop are saved (and posted, if Discord is quick)
                await asyncio.wait_for(self.bridge.drain(), SHUTDOWN_DRAIN_S)
            except TimeoutError:
                log.warning("shut down with events still being handled; unposted results post at start")
        if hasattr(self, "admission"):
            self.admission.close()
        if hasattr(self, "store"):
            await self.store.close()
        await super().close()
