"""The paper's twelve task clusters and its Table 1 (Flan 2021 datasets per cluster).

This module is the one place these facts live. ``TABLE1`` lists every dataset of the
paper's Table 1 with its cluster, its evaluation metric (Tables 3 and 4) and the Flan 2021
task names it covers (as in the ``task`` column of the Flan mixture, e.g. ``anli_r1``).
The unseen cluster is Flan's miscellaneous cluster as the paper used it: its tasks are
never in the SFT mixture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNSEEN_CLUSTER = "unseen"

CLUSTER_NAMES: dict[str, str] = {
    "nli": "Natural language inference",
    "commonsense": "Commonsense reasoning",
    "closed_book_qa": "Closed-book QA",
    "coreference": "Coreference resolution",
    "paraphrase": "Paraphrase detection",
    "reading_comprehension": "Reading comprehension",
    "reading_comprehension_commonsense": "Reading comprehension with commonsense",
    "sentiment": "Sentiment analysis",
    "struct_to_text": "Struct to text",
    "translation": "Translation",
    "summarization": "Summarization",
    UNSEEN_CLUSTER: "Unseen",
}
CLUSTERS: tuple[str, ...] = tuple(CLUSTER_NAMES)


def check_cluster(cluster: object, where: str) -> str:
    """Return ``cluster`` if it is a known cluster id, else raise ValueError naming ``where``."""
    if cluster not in CLUSTER_NAMES:
        raise ValueError(
            f"{where}: unknown cluster {cluster!r}; valid clusters: {', '.join(CLUSTERS)}"
        )
    return str(cluster)


@dataclass(frozen=True)
class Table1Dataset:
    """One dataset of the paper's Table 1.

    ``flan_tasks`` are its Flan 2021 task names; ``aliases`` are further names (e.g.
    plain GLUE names) that also identify it. Matching is by normalised prefix, see
    :func:`match_flan_task`.
    """

    name: str
    cluster: str
    metric: str
    flan_tasks: tuple[str, ...]
    aliases: tuple[str, ...] = ()

    @property
    def seen(self) -> bool:
        """Whether the paper used this dataset for instruction tuning."""
        return self.cluster != UNSEEN_CLUSTER


_D = Table1Dataset
TABLE1: tuple[Table1Dataset, ...] = (
    _D("ANLI", "nli", "accuracy", ("anli_r1", "anli_r2", "anli_r3")),
    _D("CB", "nli", "accuracy", ("cb",), ("super_glue_cb",)),
    _D("MNLI", "nli", "accuracy", ("mnli_matched", "mnli_mismatched"), ("mnli", "glue_mnli")),
    _D("QNLI", "nli", "accuracy", ("qnli",), ("glue_qnli",)),
    _D("SNLI", "nli", "accuracy", ("snli",)),
    _D("WNLI", "nli", "accuracy", ("wnli",), ("glue_wnli",)),
    _D("RTE", "nli", "accuracy", ("rte",), ("glue_rte", "super_glue_rte")),
    _D("COPA", "commonsense", "accuracy", ("copa",), ("super_glue_copa",)),
    _D("HellaSwag", "commonsense", "accuracy", ("hellaswag",)),
    _D("PiQA", "commonsense", "accuracy", ("piqa",)),
    _D("StoryCloze", "commonsense", "accuracy", ("story_cloze",)),
    _D("ARC", "closed_book_qa", "accuracy", ("arc_challenge", "arc_easy"), ("ai2_arc",)),
    _D("NQ", "closed_book_qa", "accuracy", ("natural_questions",), ("nq_open",)),
    _D("TriviaQA", "closed_book_qa", "accuracy", ("trivia_qa",)),
    _D("DPR", "coreference", "accuracy", ("definite_pronoun_resolution",), ("dpr",)),
    _D("Winogrande", "coreference", "accuracy", ("winogrande",)),
    _D("WSC273", "coreference", "accuracy", ("wsc",), ("wsc273", "super_glue_wsc")),
    _D("CommonGen", "struct_to_text", "rouge_l", ("common_gen",)),
    _D("DART", "struct_to_text", "rouge_l", ("dart",)),
    _D("E2ENLG", "struct_to_text", "rouge_l", ("e2e_nlg",)),
    _D("WebNLG", "struct_to_text", "rouge_l", ("web_nlg_en",), ("web_nlg",)),
    _D("AESLC", "summarization", "rouge_l", ("aeslc",)),
    _D("CNN-DM", "summarization", "rouge_l", ("cnn_dailymail",), ("cnn_dm",)),
    _D("Gigaword", "summarization", "rouge_l", ("gigaword",)),
    _D("MultiNews", "summarization", "rouge_l", ("multi_news",)),
    _D("Newsroom", "summarization", "rouge_l", ("newsroom",)),
    _D("Samsum", "summarization", "rouge_l", ("samsum",)),
    _D("XSum", "summarization", "rouge_l", ("xsum",)),
    _D("AG News", "summarization", "rouge_l", ("ag_news_subset",), ("ag_news",)),
    _D(
        "Opinion Abstracts - Rotten Tomatoes",
        "summarization",
        "rouge_l",
        ("opinion_abstracts_rotten_tomatoes",),
    ),
    _D("Opinion Abstracts - iDebate", "summarization", "rouge_l", ("opinion_abstracts_idebate",)),
    _D("Wikilingua English", "summarization", "rouge_l", ("wiki_lingua_english_en",)),
    _D("BoolQ", "reading_comprehension", "accuracy", ("bool_q",), ("boolq", "super_glue_boolq")),
    _D("DROP", "reading_comprehension", "accuracy", ("drop",)),
    _D("MultiRC", "reading_comprehension", "accuracy", ("multirc",), ("super_glue_multirc",)),
    _D("OBQA", "reading_comprehension", "accuracy", ("openbookqa",)),
    _D("SQuADv1", "reading_comprehension", "accuracy", ("squad_v1",)),
    _D("SQuADv2", "reading_comprehension", "accuracy", ("squad_v2",)),
    _D("IMDB", "sentiment", "accuracy", ("imdb_reviews",), ("imdb",)),
    _D("Sentiment140", "sentiment", "accuracy", ("sentiment140",)),
    _D("SST-2", "sentiment", "accuracy", ("sst2",), ("glue_sst2",)),
    _D("Yelp", "sentiment", "accuracy", ("yelp_polarity_reviews",), ("yelp",)),
    _D("MRPC", "paraphrase", "accuracy", ("glue_mrpc",), ("mrpc",)),
    _D("QQP", "paraphrase", "accuracy", ("glue_qqp",), ("qqp",)),
    _D("Paws Wiki", "paraphrase", "accuracy", ("paws_wiki",), ("paws",)),
    _D("STS-B", "paraphrase", "accuracy", ("stsb",), ("glue_stsb",)),
    _D(
        "CosmosQA",
        "reading_comprehension_commonsense",
        "accuracy",
        ("cosmos_qa",),
    ),
    _D(
        "ReCoRD",
        "reading_comprehension_commonsense",
        "accuracy",
        ("record",),
        ("super_glue_record",),
    ),
    _D("WMT'14 En-Fr", "translation", "bleu", ("wmt14_enfr",)),
    _D(
        "WMT'16",
        "translation",
        "bleu",
        tuple(f"wmt16_translate_{p}en" for p in ("cs", "de", "fi", "ro", "ru", "tr")),
    ),
    _D("ParaCrawl En-Es", "translation", "bleu", ("para_crawl_enes",)),
    _D("CoQA", UNSEEN_CLUSTER, "rouge_l", ("coqa",)),
    _D("QuAC", UNSEEN_CLUSTER, "rouge_l", ("quac",)),
    _D("WiC", UNSEEN_CLUSTER, "accuracy", ("wic",), ("super_glue_wic",)),
    _D("TREC", UNSEEN_CLUSTER, "accuracy", ("trec",)),
    _D("CoLA", UNSEEN_CLUSTER, "accuracy", ("cola",), ("glue_cola",)),
    _D("Math questions", UNSEEN_CLUSTER, "accuracy", ("math_dataset",)),
)

FLAN_TASK_CLUSTERS: dict[str, str] = {t: d.cluster for d in TABLE1 for t in d.flan_tasks}


def normalise_task_name(name: str) -> str:
    """Lower-case ``name``, keeping only letters and digits (``anli_r1`` -> ``anlir1``)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _prefix_index() -> list[tuple[str, Table1Dataset]]:
    pairs = [(normalise_task_name(n), d) for d in TABLE1 for n in d.flan_tasks + d.aliases]
    return sorted(pairs, key=lambda p: -len(p[0]))


_PREFIXES = _prefix_index()


def match_flan_task(task_name: str) -> Table1Dataset | None:
    """The Table 1 dataset a Flan task name belongs to, or None.

    Names are compared after :func:`normalise_task_name`; the longest known name that is
    a prefix of the given one wins, so ``anli_r1_10templates`` and ``wsc273`` match.
    """
    key = normalise_task_name(task_name)
    for prefix, dataset in _PREFIXES:
        if key.startswith(prefix):
            return dataset
    return None
