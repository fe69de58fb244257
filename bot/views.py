"""Buttons and the remix form. Their state lives in their custom ids (DynamicItem), so they keep
working after a restart; their callbacks hand straight over to `JobActions`, which the Restyle cog
implements (views know no service, no store and no client)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Protocol

import discord

from bot.texts import NUMBERS

# The cog that implements `JobActions` (bot.cogs.restyle.Restyle).
ACTIONS_COG = "Restyle"


class JobActions(Protocol):
    """What the buttons and the remix form ask for."""

    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None: ...
    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None: ...
    async def open_remix(self, interaction: discord.Interaction, job_id: int) -> None: ...
    async def remix(self, interaction: discord.Interaction, job_id: int, which: str, prompt: str) -> None: ...
    async def lossless(self, interaction: discord.Interaction, job_id: int, idx: int) -> None: ...


def _actions(interaction: discord.Interaction) -> JobActions:
    return interaction.client.get_cog(ACTIONS_COG)  # type: ignore[attr-defined]


class _JobButton:
    """What the job buttons share: the custom id carries the job (and candidate), nothing else.

    Each subclass is a DynamicItem with its own template and look, and hands its click to `JobActions`.
    """

    _action: ClassVar[str]
    _label: ClassVar[str]  # may name {idx}
    _emoji: ClassVar[str]
    _style: ClassVar[discord.ButtonStyle] = discord.ButtonStyle.secondary
    _row: ClassVar[int | None] = None

    def __init__(self, job_id: int, idx: int | None = None, *, label: str | None = None) -> None:
        custom_id = f"restyle:{self._action}:{job_id}" + (f":{idx}" if idx is not None else "")
        button = discord.ui.Button(
            label=(label or self._label).format(idx=idx),
            emoji=self._emoji,
            style=self._style,
            custom_id=custom_id,
            row=self._row,
        )
        super().__init__(button)  # DynamicItem's
        self.job_id, self.idx = job_id, idx

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        idx = match.groupdict().get("idx")
        return cls(int(match["job"]), int(idx) if idx else None)


class CancelButton(
    _JobButton, discord.ui.DynamicItem[discord.ui.Button], template=r"restyle:cancel:(?P<job>[0-9]+)"
):
    _action, _label, _emoji, _style = "cancel", "Cancel", "✖️", discord.ButtonStyle.danger

    async def callback(self, interaction: discord.Interaction) -> None:
        await _actions(interaction).cancel(interaction, self.job_id)


class RerollButton(
    _JobButton, discord.ui.DynamicItem[discord.ui.Button], template=r"restyle:reroll:(?P<job>[0-9]+)"
):
    _action, _label, _emoji, _style = "reroll", "Reroll", "🔁", discord.ButtonStyle.primary

    async def callback(self, interaction: discord.Interaction) -> None:
        await _actions(interaction).reroll(interaction, self.job_id)


class RemixButton(
    _JobButton, discord.ui.DynamicItem[discord.ui.Button], template=r"restyle:remix:(?P<job>[0-9]+)"
):
    _action, _label, _emoji = "remix", "Remix", "🎨"

    async def callback(self, interaction: discord.Interaction) -> None:
        await _actions(interaction).open_remix(interaction, self.job_id)


class LosslessButton(
    _JobButton,
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"restyle:flac:(?P<job>[0-9]+):(?P<idx>[0-9]+)",
):
    _action, _label, _emoji, _row = "flac", "FLAC {idx}", "💾", 1

    async def callback(self, interaction: discord.Interaction) -> None:
        await _actions(interaction).lossless(interaction, self.job_id, self.idx)


DYNAMIC_ITEMS = (CancelButton, RerollButton, RemixButton, LosslessButton)


def job_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def results_view(
    job_id: int, indices: Iterable[int], *, actions: bool = True, loop: bool = False
) -> discord.ui.View:
    """A results message's buttons: Reroll and Remix (on the first, with `actions`) and a
    lossless download for each candidate it carries (a loop's: the loop, with its points)."""
    view = discord.ui.View(timeout=None)
    if actions:
        view.add_item(RerollButton(job_id))
        view.add_item(RemixButton(job_id))
    for idx in indices:
        view.add_item(LosslessButton(job_id, idx, label="Loop {idx}" if loop else None))
    return view


class RemixModal(discord.ui.Modal, title="Remix a candidate"):
    """Use one candidate as the seed of a new job, with a new prompt."""

    def __init__(self, job_id: int, candidates: int, max_prompt: int) -> None:
        super().__init__(timeout=600)
        self.job_id = job_id
        choices = "".join(NUMBERS[:candidates])
        self.candidate = discord.ui.TextInput(
            label=f"Which candidate? ({choices})", custom_id="candidate", max_length=1, default="1"
        )
        self.prompt = discord.ui.TextInput(
            label="New style prompt",
            custom_id="prompt",
            style=discord.TextStyle.paragraph,
            max_length=max_prompt,
        )
        self.add_item(self.candidate)
        self.add_item(self.prompt)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await _actions(interaction).remix(interaction, self.job_id, self.candidate.value, self.prompt.value)
