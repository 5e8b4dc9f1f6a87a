"""The trainer hook: GRPOTrainer's prompt order comes from a Sightline prompt sampler, and its rewards flow back.

TRL's ``GRPOTrainer._get_train_sampler`` returns a ``RepeatSampler`` (each prompt index
``num_generations`` times in a row, a round of ``generation_batch_size / num_generations`` prompts
repeated ``num_iterations * steps_per_generation`` times). ``PromptRoundSampler`` yields exactly
that stream, but asks ``training.sampling`` (uniform | vade | vas | mixed) for each round's ids.
``SamplerGRPOTrainer._calculate_rewards`` then all-gathers the round's (prompt id, weighted
reward) pairs and feeds ``sampler.update`` on every rank, so all ranks draw the same ids; it
logs ``sampler/effective_group_ratio`` (share of mixed groups), ``sampler/pass_rate`` and the
sampler's own statistics next to TRL's metrics.
"""
from __future__ import annotations

from collections import defaultdict

from torch.utils.data import Sampler
from trl import GRPOTrainer

from curation.errors import SightlineError
from training.rewards import completion_text
from training.sampling import CORRECT_THRESHOLD, effective_group_ratio


class PromptRoundSampler(Sampler[int]):
    """``RepeatSampler``'s index stream with each round's prompts chosen by a Sightline prompt sampler.

    Per round: ``ids = prompt_sampler.next_batch(batch_size)``; then, like RepeatSampler,
    ``for _ in range(repeat_count): for i in ids: yield index(i) mini_repeat_count times``.
    A round is drawn lazily, when the dataloader asks for its first index. ``pending`` are
    rounds drawn before a checkpoint but not yet generated: they are replayed first on resume.
    """

    def __init__(self, prompt_sampler, dataset_ids: list[str], *, mini_repeat_count: int, batch_size: int,
                 repeat_count: int, pending: list[list[str]] | None = None, first_round: int = 0):
        self.prompt_sampler = prompt_sampler
        self.index = {pid: i for i, pid in enumerate(dataset_ids)}
        assert len(self.index) == len(dataset_ids), "rl prompt ids must be unique"
        if batch_size > len(self.index):
            raise SightlineError(f"{batch_size} prompts per round but the dataset has only {len(self.index)}")
        self.mini_repeat_count, self.batch_size, self.repeat_count = mini_repeat_count, batch_size, repeat_count
        self.queue = [list(r) for r in pending or []]
        self.drawn: list[list[str]] = []  # rounds handed out since round number `first_round`
        self.first_round = first_round

    def __len__(self) -> int:  # as RepeatSampler: one epoch = len // batch_size rounds
        return (len(self.index) // self.batch_size) * self.batch_size * self.mini_repeat_count * self.repeat_count

    def __iter__(self):
        for _ in range(len(self.index) // self.batch_size):
            ids = self.queue.pop(0) if self.queue else self.prompt_sampler.next_batch(self.batch_size)
            assert len(ids) == self.batch_size and len(set(ids)) == len(ids), "a round needs distinct ids"
            self.drawn.append(list(ids))
            indices = [self.index[pid] for pid in ids]
            for _ in range(self.repeat_count):
                for i in indices:
                    yield from [i] * self.mini_repeat_count

    def pending(self, rounds_generated: int) -> list[list[str]]:
        """Rounds drawn but not generated yet (round numbers >= ``rounds_generated``), then the queue."""
        return [list(r) for r in self.drawn[max(0, rounds_generated - self.first_round):]] + self.queue

    def forget_before(self, round_number: int) -> None:
        cut = max(0, round_number - self.first_round)
        self.drawn, self.first_round = self.drawn[cut:], self.first_round + cut


class SamplerGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose prompts come from ``prompt_sampler`` and whose rewards flow back into it."""

    def __init__(self, *args, prompt_sampler, pending: list[list[str]] | None = None, rounds_generated: int = 0,
                 **kwargs):
        self.prompt_sampler = prompt_sampler
        self.rounds_generated = rounds_generated
        self._pending = pending or []
        self.round_sampler: PromptRoundSampler | None = None
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, dataset=None) -> Sampler:
        dataset = self.train_dataset if dataset is None else dataset
        self.round_sampler = PromptRoundSampler(
            self.prompt_sampler, list(dataset["id"]), mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            pending=self._pending, first_round=self.rounds_generated)
        self._pending = []
        return self.round_sampler

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.model.training:
            self._feed_sampler(inputs, completions, rewards_per_func)
        return rewards_per_func

    def _feed_sampler(self, inputs, completions, rewards_per_func) -> None:
        from accelerate.utils import gather_object

        # rewards_per_func is already gathered over processes in process order; gather_object keeps that order.
        ids = gather_object([x["id"] for x in inputs])
        texts = gather_object([completion_text(c) for c in completions])
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        rewards = (rewards_per_func * weights).nansum(dim=1).tolist()
        assert len(ids) == len(rewards) == len(texts), "ids, rewards and completions are misaligned"
        results: dict[str, list[float]] = defaultdict(list)
        groups: dict[str, list[str]] = defaultdict(list)
        for pid, r, t in zip(ids, rewards, texts):
            results[pid].append(r)
            groups[pid].append(t)
        self.prompt_sampler.update(dict(results), completions=dict(groups))
        self.rounds_generated += 1
        if self.round_sampler is not None:
            self.round_sampler.forget_before(self.rounds_generated)
        metrics = self._metrics["train"]
        metrics["sampler/effective_group_ratio"].append(effective_group_ratio(results))
        passed = [sum(r > CORRECT_THRESHOLD for r in rs) / len(rs) for rs in results.values()]
        metrics["sampler/pass_rate"].append(sum(passed) / len(passed))
        for k, v in self.prompt_sampler.stats().items():
            if k != "step" and not k.startswith("last_"):
                metrics[f"sampler/{k}"].append(float(v))

    def sampler_checkpoint(self) -> dict:
        """The sampler's state plus the rounds drawn but not generated yet (the dataloader runs one ahead).

        A checkpoint taken inside a round (num_iterations or steps_per_generation > 1) counts
        that round as done: a resumed run generates afresh from the next round.
        """
        pending = self.round_sampler.pending(self.rounds_generated) if self.round_sampler else self._pending
        return {"global_step": self.state.global_step, "rounds_generated": self.rounds_generated,
                "pending": pending, "sampler": self.prompt_sampler.state_dict()}
