"""Sentiment analysis: labelled tweets (three-way and polarity) and generated product reviews."""

from __future__ import annotations

import random
from collections.abc import Iterator

from mossa.tasks.builtin._common import BuiltinSpec, forever, shuffled, templates, tweets_by_label
from mossa.tasks.types import Example


def _tweet_stream(labels: tuple[str, ...]):
    """Tweets with the given labels, alternating between labels (balanced classes)."""

    def generate(rng: random.Random) -> Iterator[Example]:
        groups = tweets_by_label()
        queues = [shuffled(rng, groups[label]) for label in labels]
        while all(queues):
            for queue in queues:
                tweet = queue.pop()
                yield Example({"tweet": tweet.text}, tweet.label)

    return generate


PRODUCTS = (
    "headphones", "blender", "backpack", "phone case", "coffee maker", "desk lamp", "tent",
    "kettle", "keyboard", "vacuum cleaner", "water bottle", "rain jacket", "toaster",
    "office chair", "suitcase",
)  # fmt: skip
ASPECTS = (
    "quality", "price", "design", "delivery", "packaging", "instruction manual",
    "customer service", "material", "colour", "battery",
)  # fmt: skip
GOOD = ("excellent", "superb", "impressive", "fantastic", "great", "outstanding", "wonderful")
BAD = ("poor", "disappointing", "terrible", "awful", "dreadful", "mediocre", "frustrating")
CLOSING = {
    "positive": (
        "I would happily buy it again.",
        "Highly recommended.",
        "Best purchase I made this year.",
        "I am very pleased with it.",
    ),
    "negative": (
        "I am sending it back.",
        "I would not recommend it.",
        "A complete waste of money.",
        "I regret buying it.",
    ),
}


def _review(rng: random.Random) -> Example:
    label = rng.choice(("positive", "negative"))
    main, other = (GOOD, BAD) if label == "positive" else (BAD, GOOD)
    product = rng.choice(PRODUCTS)
    first, second = rng.sample(ASPECTS, 2)
    body = f"The {first} is {rng.choice(main)}"
    if rng.random() < 0.4:
        body = f"Although the {second} is {rng.choice(other)}, the {first} is {rng.choice(main)}"
    else:
        body += f" and the {second} is {rng.choice(main)}"
    when = rng.choice(("last week", "a month ago", "in the spring", "for my birthday"))
    review = f"I bought this {product} {when}. {body}. {rng.choice(CLOSING[label])}"
    return Example({"review": review}, label)


SPECS = (
    BuiltinSpec(
        "tweet_sentiment",
        "sentiment",
        "accuracy",
        "tweets",
        templates(
            "{tweet}\nWhat is the sentiment of this tweet? Options: negative, neutral, positive",
            "Tweet: {tweet}\nSentiment:",
            "Is the following tweet positive, negative or neutral?\n{tweet}",
            "Classify the mood of this post as negative, neutral or positive. {tweet}",
            'Q: How does the author of "{tweet}" feel: positive, negative or neutral?\nA:',
            "Read the tweet and label its sentiment.\n\n{tweet}",
            '"{tweet}"\nDoes this message sound positive, negative, or neutral?',
            "Sentiment analysis (negative / neutral / positive): {tweet}",
            "Someone posted: {tweet}\nWhat attitude does the post express?",
            "Options: negative, neutral, positive\nText: {tweet}\nLabel:",
        ),
        _tweet_stream(("negative", "neutral", "positive")),
    ),
    BuiltinSpec(
        "tweet_polarity",
        "sentiment",
        "accuracy",
        "tweets",
        templates(
            "{tweet}\nIs this tweet positive or negative?",
            "Tweet: {tweet}\nPolarity (positive/negative):",
            "Decide if the writer is pleased or displeased. Answer positive or negative.\n{tweet}",
            'Q: Is the sentiment of "{tweet}" positive or negative?\nA:',
            "Here is a post from social media: {tweet} Would you call it positive or negative?",
            "Binary sentiment. Text: {tweet} Label:",
            '"{tweet}" - positive or negative?',
            "Read this and tell me whether the opinion is positive or negative. {tweet}",
            "Options: positive, negative\nTweet: {tweet}\nAnswer:",
            "What is the polarity of the following tweet?\n\n{tweet}",
        ),
        _tweet_stream(("negative", "positive")),
    ),
    BuiltinSpec(
        "review_sentiment",
        "sentiment",
        "accuracy",
        "procedural",
        templates(
            "{review}\nIs this product review positive or negative?",
            "Review: {review}\nSentiment:",
            "Did the customer like the product? Answer positive or negative.\n{review}",
            'Q: What is the sentiment of the review "{review}"?\nA:',
            "Read the customer review and classify it as positive or negative. {review}",
            "Here is what a buyer wrote: {review} Overall, is the review positive or negative?",
            "Options: positive, negative\nReview text: {review}\nLabel:",
            '"{review}"\nWould you say this review is positive or negative?',
            "Product review sentiment.\n\n{review}",
            "Judge the overall opinion in this review (positive/negative): {review}",
        ),
        forever(_review),
    ),
)
