"""Clustering experiment: task generator, encoding, hidden states, ARI, reading rule, config."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch

from mossa.clustering.ari import task_clustering_ari
from mossa.clustering.config import (
    ClusteringConfig,
    RegexTasksConfig,
    load_clustering_config,
)
from mossa.clustering.model import build_model, states_and_predictions
from mossa.clustering.regex_tasks import Atom, Instance, InstructionRegex, generate_suite
from mossa.clustering.report import read_finding
from mossa.clustering.tokens import SEP, WordTokenizer, encode_instances, sample_per_task
from mossa.clustering.train import lm_labels, train_with_checkpoints

SMALL = RegexTasksConfig(
    n_tasks=12,
    group_size=4,
    inputs_per_task=3,
    n_input_tokens=12,
    n_output_tokens=6,
    n_instruction_words=40,
    core_words=2,
    regexes_per_task=3,
    variants_per_task=40,
    max_instruction_words=7,
)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One thread, as the experiment uses: several threads thrash on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def suite():
    return generate_suite(SMALL, seed=3)


def test_same_seed_same_suite_bytes_and_other_seed_differs(suite):
    assert generate_suite(SMALL, seed=3).to_json().encode() == suite.to_json().encode()
    assert generate_suite(SMALL, seed=4).to_json() != suite.to_json()


def test_outputs_are_a_function_of_task_and_input(suite):
    answer = {}
    for split in ("train", "validation"):
        for inst in suite.instances(split):
            assert answer.setdefault((inst.task, inst.input), inst.output) == inst.output
    # every (task, input) pair of the task's input set occurs
    assert set(answer) == {(i, x) for i, t in enumerate(suite.tasks) for x in t.inputs}


def test_groups_share_inputs_and_differ_in_some_output(suite):
    groups = {}
    for task in suite.tasks:
        groups.setdefault(task.group, []).append(task)
    assert len(groups) == SMALL.n_tasks // SMALL.group_size
    for members in groups.values():
        assert len(members) == SMALL.group_size
        assert len({t.inputs for t in members}) == 1  # one shared input set
        for a, b in itertools.combinations(members, 2):
            assert any(a.answer(x) != b.answer(x) for x in a.inputs)


def test_instruction_variants_split_disjointly_and_belong_to_one_task(suite):
    owner = {}
    for index, task in enumerate(suite.tasks):
        train, val = set(task.train_instructions), set(task.validation_instructions)
        assert len(train) == len(task.train_instructions)
        assert len(train) + len(val) == SMALL.variants_per_task
        assert len(val) == round(SMALL.validation_fraction * SMALL.variants_per_task)
        assert not train & val
        for s in train | val:
            assert owner.setdefault(s, index) == index


def test_every_distribution_of_a_task_shares_its_core_and_no_other_task_uses_it(suite):
    cores = {w: i for i, t in enumerate(suite.tasks) for w in t.core}
    assert len(cores) == SMALL.n_tasks * SMALL.core_words  # cores are disjoint
    for index, task in enumerate(suite.tasks):
        assert len(task.regexes) == SMALL.regexes_per_task
        assert len({r.text() for r in task.regexes}) == SMALL.regexes_per_task
        core_text = " ".join(task.core)
        for regex in task.regexes:  # the core, once, as plain words; the rest filler
            assert f" {core_text} " in f" {regex.text()} "
            filler = [w for a in regex.atoms for w in a.words if w not in task.core]
            assert not set(filler) & set(cores)
        for words in task.train_instructions + task.validation_instructions:
            assert f" {core_text} " in f" {' '.join(words)} "
            assert {cores[w] for w in words if w in cores} == {index}


def test_instructions_are_in_the_language_of_their_task_regexes(suite):
    for task in suite.tasks:
        for words in task.train_instructions + task.validation_instructions:
            assert 1 <= len(words) <= SMALL.max_instruction_words
            text = " ".join(words) + " "
            assert any(re.fullmatch(r.python_pattern(), text) for r in task.regexes)


def test_regex_text_and_language():
    regex = InstructionRegex((Atom(("a", "b"), 1, 2), Atom(("c",), 0, 1)))
    assert regex.text() == "(a|b){1,2} c?"
    assert regex.max_strings() == (2 + 4) * 2
    assert regex.matches(("b", "a", "c")) and regex.matches(("a",))
    assert not regex.matches(("c",)) and not regex.matches(("a", "b", "a"))
    rng = np.random.default_rng(0)
    samples = {regex.sample(rng) for _ in range(500)}
    assert len(samples) == regex.max_strings()  # every string of the language is reachable
    assert all(regex.matches(s) for s in samples)


def test_encoding_layout(suite):
    tokenizer = WordTokenizer(suite)
    instances = suite.instances("validation")[:50]
    seq_len = suite.max_instruction_words + 3
    enc = encode_instances(instances, tokenizer, seq_len)
    for row, inst in enumerate(instances):
        n = len(inst.instruction)
        ids = enc.input_ids[row].tolist()
        assert ids[:n] == tokenizer.encode(inst.instruction)
        assert ids[n : n + 3] == tokenizer.encode([SEP, inst.input, inst.output])
        assert set(ids[n + 3 :]) <= {tokenizer.pad_id}
        assert enc.sep_pos[row] == n and ids[n] == tokenizer.sep_id
        assert enc.predict_pos[row] == n + 1
        assert enc.target[row] == tokenizer.ids[inst.output]
        assert enc.attention_mask[row].sum() == n + 3
    labels = lm_labels(enc, "output")
    assert (labels != -100).sum() == len(instances)
    assert torch.equal(labels[torch.arange(len(enc)), enc.predict_pos + 1], enc.target)


def test_sample_per_task_takes_n_of_every_task(suite):
    enc = encode_instances(suite.instances("train"), WordTokenizer(suite), 12)
    sub = sample_per_task(enc, 7, seed=0)
    assert torch.bincount(sub.task).tolist() == [7] * SMALL.n_tasks
    assert torch.equal(sample_per_task(enc, 7, seed=0).input_ids, sub.input_ids)


POSITIONS = ["separator", "last_word", "input", "instruction_mean"]


def _tiny_model(suite, seed=0):
    cfg = ClusteringConfig(model={"n_layer": 2, "n_embd": 32, "n_head": 2})
    tokenizer = WordTokenizer(suite)
    seq_len = suite.max_instruction_words + 3
    return build_model(cfg.model, len(tokenizer), seq_len, seed=seed).eval(), tokenizer, seq_len


def test_positions_index_the_right_tokens_and_last_layer_feeds_lm_head(suite):
    model, tokenizer, seq_len = _tiny_model(suite)
    instances = suite.instances("train")[::97][:8]
    enc = encode_instances(instances, tokenizer, seq_len)
    states, predictions = states_and_predictions(model, enc, POSITIONS, batch_size=3)
    assert all(states[p].shape == (3, len(instances), 32) for p in POSITIONS)
    with torch.no_grad():
        for row, inst in enumerate(instances):
            n = len(inst.instruction)
            prefix = torch.tensor([tokenizer.encode([*inst.instruction, SEP, inst.input])])
            out = model(input_ids=prefix, output_hidden_states=True)
            for layer, hidden in enumerate(out.hidden_states):
                expected = {
                    "separator": hidden[0, n],
                    "last_word": hidden[0, n - 1],
                    "input": hidden[0, n + 1],
                    "instruction_mean": hidden[0, :n].mean(0),
                }
                for position, value in expected.items():
                    np.testing.assert_allclose(
                        states[position][layer, row], value.numpy(), atol=1e-5, err_msg=position
                    )
            logits = model.lm_head(torch.from_numpy(states["input"][-1, row]))
            assert predictions[row] == out.logits[0, -1].argmax() == logits.argmax()


def test_separator_state_depends_only_on_the_instruction(suite):
    model, tokenizer, seq_len = _tiny_model(suite, seed=1)
    task = suite.tasks[0]
    same_length = [i for i in task.train_instructions if len(i) == len(task.train_instructions[0])]
    other = suite.tasks[1]
    instances = [
        Instance(0, same_length[0], task.inputs[0], task.outputs[0]),
        Instance(0, same_length[0], task.inputs[1], task.outputs[1]),  # other input and output
        Instance(1, same_length[0], other.inputs[2], other.outputs[2]),  # other task's label
        Instance(0, same_length[1], task.inputs[0], task.outputs[0]),  # other instruction
    ]
    states, _ = states_and_predictions(
        model, encode_instances(instances, tokenizer, seq_len), ["separator", "input"]
    )
    sep, inp = states["separator"], states["input"]
    for layer in range(sep.shape[0]):  # input, output and label never reach the separator
        np.testing.assert_array_equal(sep[layer, 0], sep[layer, 1])
        np.testing.assert_array_equal(sep[layer, 0], sep[layer, 2])
    assert not np.allclose(inp[0, 0], inp[0, 1])  # the input position sees the input
    # layer 0 at the separator is the SEP embedding plus the position: the same for any
    # instruction of that length, so it cannot tell tasks apart; later layers read the words
    np.testing.assert_array_equal(sep[0, 0], sep[0, 3])
    assert not np.allclose(sep[-1, 0], sep[-1, 3])


def test_training_is_reproducible_and_lowers_loss(suite):
    cfg = ClusteringConfig(
        model={"n_layer": 1, "n_embd": 16, "n_head": 2},
        training={
            "steps": 30,
            "batch_size": 16,
            "lr": 3e-3,
            "warmup_steps": 3,
            "checkpoint_steps": [0, 10],
        },
    )
    tokenizer = WordTokenizer(suite)
    enc = encode_instances(suite.instances("train"), tokenizer, 10)
    runs = []
    for _ in range(2):
        model = build_model(cfg.model, len(tokenizer), 10, seed=1)
        checkpoints = list(train_with_checkpoints(model, enc, cfg.training, seed=2))
        runs.append(model.state_dict())
    assert [c.step for c in checkpoints] == [0, 10, 30]
    assert checkpoints[2].train_loss < checkpoints[1].train_loss  # mean loss of later steps
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key


def test_ari_of_task_one_hot_plus_noise_is_near_one():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(20), 15)
    states = np.eye(20)[labels] + 0.05 * rng.standard_normal((len(labels), 20))
    states = np.hstack([states, 0.05 * rng.standard_normal((len(labels), 12))])
    assert task_clustering_ari(states, labels, n_init=5, seed=0) > 0.95


def test_ari_of_random_states_is_near_zero():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(20), 15)
    states = rng.standard_normal((len(labels), 32))
    assert abs(task_clustering_ari(states, labels, n_init=5, seed=0)) < 0.05


@pytest.mark.parametrize(
    ("states", "labels", "message"),
    [
        (np.zeros(10), np.zeros(10), "2-D"),
        (np.zeros((10, 2)), np.zeros(9), "labels must have shape"),
        (np.full((4, 2), np.nan), np.arange(4), "NaN"),
    ],
)
def test_ari_rejects_bad_input(states, labels, message):
    with pytest.raises(ValueError, match=message):
        task_clustering_ari(states, labels)


def _rows(deep: list[float], layer0: list[float], position: str = "separator") -> list[dict]:
    steps = [0, 100, 200]
    return [
        {"step": s, "layer": layer, "split": split, "position": position, "ari": values[i]}
        for split in ("train", "validation")
        for layer, values in ((0, layer0), (6, deep))
        for i, s in enumerate(steps)
    ]


def test_reading_rule_needs_rise_and_gap_and_compares_with_the_paper():
    yes = read_finding(_rows([0.05, 0.3, 0.6], [0.05, 0.05, 0.05]), 0.1, "separator")
    assert yes.reproduced and yes.rise == pytest.approx(0.55) and yes.gap == pytest.approx(0.55)
    assert yes.paper_magnitude and "at the paper's magnitude" in yes.sentence()
    assert "separator" in yes.sentence()
    peaked = read_finding(_rows([0.1, 0.9, 0.6], [0.0, 0.0, 0.0]), 0.1, "separator")
    assert (peaked.peak_step, peaked.deepest_peak) == (100, 0.9)
    assert "highest 0.900 at step 100" in peaked.sentence()
    small = read_finding(_rows([0.0, 0.1, 0.3], [0.0, 0.0, 0.0]), 0.1, "separator")
    assert small.reproduced and not small.paper_magnitude
    assert "below the paper's magnitude" in small.sentence()
    no_rise = read_finding(_rows([0.6, 0.6, 0.62], [0.05, 0.05, 0.05]), 0.1, "separator")
    no_gap = read_finding(_rows([0.05, 0.2, 0.3], [0.05, 0.1, 0.25]), 0.1, "separator")
    assert not no_rise.reproduced and not no_gap.reproduced
    assert "did NOT reproduce" in no_gap.sentence()
    # the rule reads the configured position only
    rows = _rows([0.0, 0.3, 0.7], [0.0, 0.0, 0.0]) + _rows([0.0, 0.0, 0.1], [0.0] * 3, "input")
    assert read_finding(rows, 0.1, "input").deepest_final == pytest.approx(0.1)
    with pytest.raises(ValueError, match="position 'last_word'"):
        read_finding(rows, 0.1, "last_word")


def test_config_profiles_and_errors():
    assert load_clustering_config() == ClusteringConfig()  # the regex profile spells out defaults
    smoke = load_clustering_config("regex-smoke", overrides=["training.steps=50", "seed=7"])
    assert smoke.training.steps == 50 and smoke.seed == 7
    assert smoke.training.checkpoints[-1] == 50
    bad = [
        (["tasks.n_taks=3"], "tasks.n_taks"),
        (["model.n_head=3"], "divisible"),
        (["training.checkpoint_steps=[0, 999]"], "beyond steps"),
        (["training.lr=-1"], "training.lr"),
        (["analysis.position=middle"], "analysis.position"),
        (["analysis.compare_positions=[input, end]"], r"analysis\.compare_positions\.1"),
        (["tasks.regexes_per_task=0"], "tasks.regexes_per_task"),
        (["tasks.n_tasks=14"], "tasks.n_tasks .* more than the vocabulary can distinguish"),
        (["tasks.max_instruction_words=2"], "core_words .* no room for filler"),
    ]
    for overrides, message in bad:
        with pytest.raises(ValueError, match=message):
            load_clustering_config("regex-smoke", overrides=overrides)
    with pytest.raises(ValueError, match="unknown profile"):
        load_clustering_config("nope")
