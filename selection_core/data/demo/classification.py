"""Sentiment and topic labels for invented reviews and headlines, checked by the first label
word in the answer."""
from __future__ import annotations

import random
import re

from .common import Item

_SENTIMENT_LABELS = ("positive", "negative", "neutral")
_TOPIC_LABELS = ("sports", "politics", "science", "business")
_PRODUCTS = ("wireless headphones", "blender", "hiking backpack", "desk lamp", "coffee grinder",
             "phone case", "electric kettle", "yoga mat", "office chair", "rain jacket")
_RESTAURANTS = ("the Blue Fig", "Casa Lumo", "the Golden Wok", "the corner bistro",
                "Mama Rosa's", "the new ramen bar")
_REVIEW_SENTENCES = {
    ("product", "positive"): (
        "Absolutely love this {x}.", "The {x} works perfectly and feels solid.",
        "Setup took two minutes and it has been flawless since.",
        "Best purchase I have made this year.", "Great value for the price.",
        "It exceeded my expectations in every way.", "Would happily buy it again."),
    ("product", "negative"): (
        "The {x} stopped working after a week.", "Cheap plastic, and it arrived scratched.",
        "Customer support never answered my emails.", "Total waste of money.",
        "It is much louder than advertised and gets hot.", "I returned it the next day.",
        "Do not buy this {x}."),
    ("product", "neutral"): (
        "The {x} arrived on Tuesday in standard packaging.",
        "It does what the description says, nothing more and nothing less.",
        "The colour is slightly darker than in the photos.",
        "It is about the same as my previous one.", "Instructions were included.",
        "I have used the {x} a few times so far."),
    ("restaurant", "positive"): (
        "We had a wonderful dinner at {x}.", "Every dish came out hot and full of flavour.",
        "We will definitely be coming back.", "Friendly staff and a cosy atmosphere.",
        "The dessert alone is worth the trip.", "Best meal I have had in months."),
    ("restaurant", "negative"): (
        "Our evening at {x} was a disappointment.", "We waited over an hour for cold food.",
        "The waiter was rude and the table was sticky.", "Overpriced and bland.",
        "My order was wrong twice.", "Never again."),
    ("restaurant", "neutral"): (
        "We ate at {x} on a weekday evening.", "The menu has the usual options.",
        "Portions were average and prices were typical for the area.",
        "Parking is available behind the building.", "It was open until ten.",
        "We ordered two mains and shared a starter."),
}
_TEAMS = ("Riverton Rovers", "Northgate United", "Ashford Athletic", "Kingsbay City",
          "Maplewood FC", "Eastbrook Wanderers")
_PLAYERS = ("Marta Silva", "Jonas Berg", "Kofi Mensah", "Lena Hoffmann", "Diego Ramos",
            "Aiko Tanaka")
_COMPANIES = ("Brightline Foods", "Corvex Motors", "Nimbus Energy", "Halden Bank",
              "Tessaro Logistics", "Quill Software")
_TOWNS = ("Riverton", "Northgate", "Ashford", "Kingsbay", "Maplewood", "Eastbrook")
_HEADLINES = {
    "sports": ("{team} beat {team2} {x}-{y} to reach the cup final",
               "{player} signs three-year contract with {team}",
               "{team} coach resigns after fifth straight defeat",
               "Injury rules {player} out of the championship final",
               "Record crowd watches {team} win the derby against {team2}"),
    "politics": ("Parliament passes new {policy} law after late-night vote",
                 "Prime minister calls snap election over {policy} row",
                 "Opposition demands inquiry into {policy} spending",
                 "Senate rejects {policy} reform bill by narrow margin",
                 "Mayor of {town} unveils plan to overhaul {policy} policy",
                 "{minister} resigns as {policy} minister after {x} years in office",
                 "Voters in {town} head to the polls in {policy}-dominated by-election"),
    "science": ("Researchers discover new species of {creature} in {place}",
                "Telescope captures sharpest image yet of a distant {astro}",
                "Study links {habit} to {outcome}",
                "New battery material could double the range of electric cars",
                "Physicists measure the mass of the {particle} with record precision",
                "{x} new {creature} species identified in {place}",
                "Space probe sends back first close-up pictures of a {astro}"),
    "business": ("{company} shares jump {x}% after strong quarterly earnings",
                 "{company} to cut {x}00 jobs as demand slows",
                 "{company} agrees to buy {company2} in {x} billion deal",
                 "Central bank holds interest rates steady as inflation cools",
                 "{company} opens new factory in {town}"),
}
_HEADLINE_FILLERS = {
    "policy": ("housing", "education", "healthcare", "transport", "pension", "climate",
               "immigration", "tax", "energy", "defence"),
    "minister": _PLAYERS,
    "creature": ("deep-sea jellyfish", "tree frog", "orchid", "beetle", "cave fish", "moss",
                 "bat", "coral"),
    "place": ("the Andes", "a remote cave", "the Pacific seabed", "a Borneo rainforest",
              "the Arctic", "a volcanic lake"),
    "astro": ("galaxy", "comet", "exoplanet", "star cluster", "asteroid", "moon of Saturn"),
    "habit": ("daily walks", "afternoon naps", "a Mediterranean diet", "reading before bed"),
    "outcome": ("better sleep", "lower blood pressure", "sharper memory", "a longer life"),
    "particle": ("neutrino", "top quark", "W boson"),
}
_SENTIMENT_PROMPTS = (
    "Classify the sentiment of this review as positive, negative, or neutral.\n\nReview: {t}",
    "What is the sentiment of the following customer review? Answer with positive, negative, or "
    "neutral.\n\n{t}",
    'Is this review positive, negative or neutral?\n\n"{t}"',
    "Read the review below and label its sentiment (positive / negative / neutral).\n\n{t}")
_TOPIC_PROMPTS = (
    "Classify the topic of this news headline as sports, politics, science, or business.\n\n"
    "Headline: {t}",
    'Which category does this headline belong to: sports, politics, science or business?\n\n"{t}"',
    "Assign one topic label (sports / politics / science / business) to the headline below.\n\n{t}",
    "Headline: {t}\nWhich section of the newspaper would this appear in? Choose from sports, "
    "politics, science, business.")
_LABEL_ANSWERS = ("{}", "Label: {}", "The answer is {}.", "This one is {}.")


def _review(rng: random.Random, label: str) -> str:
    kind = rng.choice(("product", "restaurant"))
    subject = rng.choice(_PRODUCTS if kind == "product" else _RESTAURANTS)
    sentences = rng.sample(_REVIEW_SENTENCES[kind, label], rng.randint(2, 3))
    return " ".join(sentences).format(x=subject)


def _headline(rng: random.Random, label: str) -> str:
    team, team2 = rng.sample(_TEAMS, 2)
    company, company2 = rng.sample(_COMPANIES, 2)
    fillers = {key: rng.choice(values) for key, values in _HEADLINE_FILLERS.items()}
    return rng.choice(_HEADLINES[label]).format(
        team=team, team2=team2, player=rng.choice(_PLAYERS), company=company, company2=company2,
        town=rng.choice(_TOWNS), x=rng.randint(2, 9), y=rng.randint(0, 4), **fillers)


def generate(rng: random.Random) -> Item:
    if rng.random() < 0.5:
        labels, prompts, text = _SENTIMENT_LABELS, _SENTIMENT_PROMPTS, _review
    else:
        labels, prompts, text = _TOPIC_LABELS, _TOPIC_PROMPTS, _headline
    label = rng.choice(labels)
    prompt = rng.choice(prompts).format(t=text(rng, label))
    answer = rng.choice(_LABEL_ANSWERS)
    wrong = rng.choice([other for other in labels if other != label])
    return Item(prompt, answer.format(label), label, answer.format(wrong))


# --------------------------------------------------------------------------- checking
_LABEL_WORD = re.compile(r"\b(" + "|".join(_SENTIMENT_LABELS + _TOPIC_LABELS) + r")\b",
                         re.IGNORECASE)


def check(gold: str, completion: str) -> bool:
    match = _LABEL_WORD.search(completion)
    return match is not None and match.group(1).lower() == gold.lower()
