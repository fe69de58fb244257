"""/restyle and /help, and the buttons' `JobActions` (bot.views): each hands over to admission
(new jobs), the lifecycle (Cancel) or the poster (lossless files)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import texts
from bot.checks import MAX_INTRO_BARS, cancel_refusal
from bot.models import RequestOptions
from bot.replies import refuse
from generation.interface import MAX_SEED

if TYPE_CHECKING:
    from bot.client import RestyleBot


class Restyle(commands.Cog):
    def __init__(self, bot: RestyleBot) -> None:
        self.bot = bot

    @app_commands.command(name="restyle")
    @app_commands.guild_only()
    @app_commands.describe(
        audio="The seed track (mp3, wav, flac, ogg, m4a...): its melody is kept",
        prompt="The style you want, e.g. serene ambient piano, gentle chimes",
        candidates="How many versions to make and vote on",
        duration="Length in seconds (default: the seed's length)",
        seed="A number that makes the result reproducible",
        model="MusicGen-melody (non-commercial) or ACE-Step (MIT, keeps rhythm too): see /help",
        loop="Make a seamless loop for games: whole bars; its Loop button sends a WAV with loop points",
        bpm="The seed's tempo, for a loop (default: found from the seed)",
        intro="With loop: this many bars that play once, then lead into the loop (same file)",
        layers="With loop: also send the loop as drums, bass, other and vocals, in sync, to fade in and out",
        strength="ACE-Step only: how closely the cover follows the seed, 0 (not at all) to 1 (to the end)",
    )
    async def restyle(  # noqa: PLR0917 - a slash command's options are its parameters
        self,
        interaction: discord.Interaction,
        audio: discord.Attachment,
        prompt: app_commands.Range[str, 1, 1000],
        candidates: app_commands.Range[int, 1, 4] | None = None,
        duration: app_commands.Range[float, 1.0, 600.0] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        model: str | None = None,
        loop: bool | None = None,
        bpm: app_commands.Range[float, 30.0, 300.0] | None = None,
        intro: app_commands.Range[int, 1, MAX_INTRO_BARS] | None = None,
        layers: bool | None = None,
        strength: app_commands.Range[float, 0.0, 1.0] | None = None,
    ) -> None:
        """Keep a track's melody, change its style: candidates are posted here to vote on."""
        candidates = candidates or self.bot.config.limits.default_candidates
        request = RequestOptions(
            prompt=prompt,
            candidates=candidates,
            duration=duration,
            seed=seed,
            model=model,
            loop=bool(loop),
            bpm=bpm,
            intro=intro or 0,
            layers=bool(layers),
            strength=strength,
        )
        await self.bot.admission.restyle(interaction, audio, request)

    @restyle.autocomplete("model")
    async def model_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = [name for name in self.bot.config.models.choices if current.lower() in name.lower()]
        return [app_commands.Choice(name=name, value=name) for name in names[:25]]

    # -- JobActions: the buttons and the remix form ------------------------------------------------

    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        job = await self.bot.store.job(job_id)
        refusal = cancel_refusal(job, interaction)
        if refusal:
            await refuse(interaction, refusal)
            return
        # Acknowledged first: ending the job writes to the database, which another process (a
        # backup, an admin's shell) may hold for longer than Discord's 3 s.
        await interaction.response.defer(ephemeral=True, thinking=True)
        if await self.bot.lifecycle.cancel(job.id, interaction.user.display_name):
            await refuse(interaction, f"Stopping job #{job.id}…")  # it stops within a step
        else:
            await refuse(interaction, f"Cancelled job #{job.id}.")

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        await self.bot.admission.reroll(interaction, job_id)

    async def open_remix(self, interaction: discord.Interaction, job_id: int) -> None:
        await self.bot.admission.open_remix(interaction, job_id)

    async def remix(self, interaction: discord.Interaction, job_id: int, which: str, prompt: str) -> None:
        await self.bot.admission.remix(interaction, job_id, which, prompt)

    async def lossless(self, interaction: discord.Interaction, job_id: int, idx: int) -> None:
        await self.bot.poster.send_lossless(interaction, job_id, idx)

    @app_commands.command(name="help")
    async def help(self, interaction: discord.Interaction) -> None:
        """How to use Restyle, its limits, and its models: their licences, what they keep, their speed."""
        limits, models = self.bot.config.limits, self.bot.config.models.choices
        text = texts.help_text(limits.max_candidates, limits.max_output_seconds, limits.max_upload_mb, models)
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: RestyleBot) -> None:
    await bot.add_cog(Restyle(bot))
