"""instruction_following_reward: the reward of spac-hf's instruction-following task, as an `evaluate` metric.

Self-contained on purpose: a metric Space must run without spac-hf's training stack. The reward is lm-eval's own
IFEval checkers (`lm_eval.tasks.ifeval`, strict), exactly as `spac_hf.tasks.instruction_following.reward` calls them;
spac-hf's tests compare the two on the same responses.
"""

import json

import datasets
import evaluate
import lm_eval


_DESCRIPTION = """\
The reward of spac-hf's instruction-following task: the fraction of a prompt's verifiable constraints that a response
follows ("Your response should contain at least 3 sentences.", "Wrap your entire response with double quotation
marks."), judged by lm-eval's own IFEval checkers in their strict form. A prompt carries one to three constraints
drawn from lm-eval's IFEval instruction registry, so the reward moves in steps of 1/3 to 1. Also returned: IFEval's
four accuracies over the inputs (prompt- and instruction-level, strict and loose), computed as lm-eval computes them.
"""

_CITATION = """\
@misc{spachf,
  title  = {{spac-hf: SPAC (Self-Play with Adversarial Critic) for TRL}},
  year   = {2026},
  url    = {https://github.com/spac-hf/spac-hf}
}
@article{zhou2023ifeval,
  title   = {{Instruction-Following Evaluation for Large Language Models}},
  author  = {Zhou, Jeffrey and Lu, Tianjian and Mishra, Swaroop and Brahma, Siddhartha and Basu, Sujoy and
             Luan, Yi and Zhou, Denny and Hou, Le},
  journal = {arXiv preprint arXiv:2311.07911},
  year    = {2023}
}
"""

_KWARGS_DESCRIPTION = """
Scores each response against its prompt's constraints with lm-eval's IFEval checkers.
Args:
    predictions (`list` of `str`): the model's responses, one per prompt. An empty response is valid and follows
        nothing (lm-eval's strict checker).
    prompts (`list` of `str`): the prompts the responses answer (a checker that repeats the prompt reads it); not
        empty.
    constraints (`list` of `str`): per prompt, a JSON object {"instruction_id_list": [...], "kwargs": [...]}: the
        ids of lm-eval's IFEval instructions and one dict of arguments per instruction (IFEval's own row schema;
        spac-hf's data sets carry it as their `constraints` column).
Returns:
    mean_reward (`float`): the mean of `rewards`.
    rewards (`list` of `float`): per response, the fraction of its constraints followed (strict), in [0, 1].
    prompt_level_strict_acc, inst_level_strict_acc, prompt_level_loose_acc, inst_level_loose_acc (`float`): IFEval's
        accuracies over the inputs.
Examples:
    >>> metric = evaluate.load("spac-hf/instruction_following_reward")
    >>> ids = ["change_case:english_lowercase", "punctuation:no_comma"]
    >>> constraints = json.dumps({"instruction_id_list": ids, "kwargs": [{}, {}]})
    >>> metric.compute(predictions=["cats purr, they sleep."], prompts=["Describe a cat."], constraints=[constraints])
    {'mean_reward': 0.5, 'rewards': [0.5], 'prompt_level_strict_acc': 0.0, 'inst_level_strict_acc': 0.5, ...}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class InstructionFollowingReward(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "prompts": datasets.Value("string"),
                    "constraints": datasets.Value("string"),
                }
            ),
            homepage="https://github.com/spac-hf/spac-hf",
            codebase_urls=[
                "https://github.com/EleutherAI/lm-evaluation-harness/tree/main/lm_eval/tasks/ifeval",
                "https://github.com/spac-hf/spac-hf/blob/main/src/spac_hf/tasks/instruction_following.py",
            ],
            reference_urls=["https://arxiv.org/abs/2311.07911"],
        )

    def _download_and_prepare(self, dl_manager):
        # lm-eval's IFEval code loads NLTK's Punkt sentence splitter at import, downloading `punkt_tab` if NLTK cannot
        # find it: offline, put it on NLTK_DATA first (spac-hf's `benchmarks.eval_data.fetch.ensure_punkt` does).
        import langdetect
        from lm_eval.tasks.ifeval import instructions_registry, utils

        # The response-language checker uses langdetect, which is random unless seeded (spac-hf seeds it the same way).
        langdetect.DetectorFactory.seed = 0
        self._registry, self._utils = instructions_registry, utils

    def _compute(self, predictions, prompts, constraints):
        # `evaluate` has already refused mismatched lengths and values of another type; None reaches here as None.
        if not predictions:
            raise ValueError("instruction_following_reward: nothing to score (the inputs are empty lists).")
        for column, values in (("predictions", predictions), ("prompts", prompts), ("constraints", constraints)):
            missing = [i for i, value in enumerate(values) if not isinstance(value, str)]
            if missing:
                raise ValueError(
                    f"instruction_following_reward: {column}[{missing[0]}] is {values[missing[0]]!r}, not a string "
                    f"({len(missing)} such values in {column})."
                )
        examples = [self._example(i, prompt, spec) for i, (prompt, spec) in enumerate(zip(prompts, constraints))]
        utils = self._utils
        pairs = list(zip(examples, predictions))
        strict = [utils.test_instruction_following_strict(e, r).follow_instruction_list for e, r in pairs]
        loose = [utils.test_instruction_following_loose(e, r).follow_instruction_list for e, r in pairs]
        rewards = [sum(followed) / len(followed) for followed in strict]
        return {
            "mean_reward": sum(rewards) / len(rewards),
            "rewards": rewards,
            "prompt_level_strict_acc": sum(all(f) for f in strict) / len(strict),
            "inst_level_strict_acc": sum(map(sum, strict)) / sum(map(len, strict)),
            "prompt_level_loose_acc": sum(all(f) for f in loose) / len(loose),
            "inst_level_loose_acc": sum(map(sum, loose)) / sum(map(len, loose)),
        }

    def _example(self, index, prompt, spec):
        """One input as lm-eval's `InputExample`, with an error naming the index for anything malformed."""
        where = f"instruction_following_reward: row {index}"
        if not prompt.strip():
            raise ValueError(f"{where}: the prompt is an empty string; every response needs the prompt it answers.")
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: `constraints` is not JSON ({err}): {spec[:80]!r}") from None
        ids, kwargs = (spec.get("instruction_id_list"), spec.get("kwargs")) if isinstance(spec, dict) else (None, None)
        if not isinstance(ids, list) or not ids or not isinstance(kwargs, list) or len(kwargs) != len(ids):
            raise ValueError(
                f'{where}: `constraints` must be {{"instruction_id_list": [ids], "kwargs": [one dict per id]}} '
                f"with at least one instruction, got {json.dumps(spec)[:120]}"
            )
        unknown = [i for i in ids if i not in self._registry.INSTRUCTION_DICT]
        if unknown:
            raise ValueError(f"{where}: unknown IFEval instruction {unknown[0]!r} (lm-eval {lm_eval.__version__}).")
        return self._utils.InputExample(key=index, instruction_id_list=ids, prompt=prompt, kwargs=kwargs)
