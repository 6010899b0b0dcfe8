"""A small, realistic-looking retrieval set in synthgen's stored-example format, from templated facts.

No LLM and no downloaded data: fictional towns, companies, species and novels, each described by
four short encyclopedia-style paragraphs (one per aspect: e.g. a town's geography, history, economy
and culture). A short-long example is a question about one aspect of one entity, the paragraph
that answers it (positive) and another paragraph about the same entity (hard negative: same
names, wrong aspect). A long-short example classifies a paragraph by a fact in it (the label) against
another value of the same field (misleading label). Every task has its own wording of the questions,
so a held-out task is new phrasing over new entities.

    python bench/facts.py --out data/facts/examples.jsonl --per-task 30 --seed 0
"""

import argparse
import json
import random
from pathlib import Path

SYLLABLES = ["var", "hol", "tes", "mar", "ken", "dro", "bel", "quin", "lor", "sab", "ost", "rim", "tal", "wen",
             "gar", "fen", "mir", "cal", "dun", "pra", "vel", "nor", "ast", "bri", "kel", "sor", "tham", "ul"]
SURNAMES = ["Ardent", "Blomqvist", "Carrow", "Delmar", "Essig", "Falk", "Gorrin", "Hask", "Imbert", "Jurado",
            "Kessler", "Lund", "Morrow", "Nyberg", "Orland", "Penn", "Quist", "Roux", "Stahl", "Tovar"]
GIVEN = ["Anna", "Bruno", "Celia", "Dmitri", "Elsa", "Farid", "Greta", "Henrik", "Ines", "Jonas", "Kaori", "Luis",
         "Mira", "Nils", "Olga", "Pavel", "Rosa", "Stefan", "Tove", "Ugo"]


def coin(rng: random.Random, parts: int = 2) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def person(rng: random.Random) -> str:
    return f"{rng.choice(GIVEN)} {rng.choice(SURNAMES)}"


# Each domain: make(rng) -> facts; aspects: name -> paragraph template; questions: aspect -> templates;
# fields to classify by: field -> (values, template of the task).
DOMAINS = {
    "town": {
        "make": lambda r: {
            "name": coin(r, 3), "region": coin(r) + " Valley", "river": coin(r), "elevation": r.randrange(40, 1900),
            "year": r.randrange(900, 1850), "founder": person(r), "old": coin(r),
            "industry": r.choice(["fishing", "textile weaving", "copper mining", "shipbuilding", "glassmaking", "wine growing"]),
            "employer": coin(r) + " Works", "day": r.choice(["Monday", "Wednesday", "Friday", "Saturday"]),
            "festival": coin(r) + " Night", "month": r.choice(["March", "June", "August", "October"]),
            "dish": coin(r) + " stew", "landmark": r.choice(["clock tower", "stone bridge", "abbey", "lighthouse"]),
        },
        "aspects": {
            "geography": "{name} lies in the {region} at an elevation of {elevation} metres. The river {river} runs "
                         "through the centre of {name} before it joins the sea, and the surrounding hills are covered in "
                         "pine forest. Winters in {name} are long, and the river often freezes in January.",
            "history": "{name} was founded in {year} by {founder}, who built a fortified farm near a ford. For two "
                       "centuries the settlement was known as {old}. {name} received its town charter much later, "
                       "after the old walls were taken down and the market square was laid out.",
            "economy": "The economy of {name} rests on {industry}. The largest employer is {employer}, and a market is "
                       "held in {name} every {day}. Many young people commute to larger cities, but {industry} still "
                       "employs about a third of the working population.",
            "culture": "Every {month} {name} celebrates {festival}, when the streets around the {landmark} fill with "
                       "music. Visitors are offered {dish}, the local speciality, and the town choir performs in the "
                       "square. The {landmark} is the most photographed building in {name}.",
        },
        "questions": {
            "geography": ["Which river flows through {name}?", "how high above sea level is {name}",
                          "In which valley is the town of {name}?", "{name} river"],
            "history": ["Who founded {name}?", "when was {name} founded", "What was {name} called in the past?",
                        "{name} founding year"],
            "economy": ["What is the main industry in {name}?", "biggest employer in {name}",
                        "On which day is the market held in {name}?", "how do people in {name} earn a living"],
            "culture": ["What festival does {name} celebrate?", "local dish of {name}",
                        "What is the most famous building in {name}?", "{name} festival month"],
        },
        "classify": {"industry": "Classify a description of a town's economy by its main industry"},
        "tasks": ["Given a traveller's question about a town, retrieve the encyclopedia paragraph that answers it",
                  "Retrieve the gazetteer entry that answers a question about a settlement",
                  "Given a student's question about local history or geography, find the passage that answers it",
                  "Match a short question about a town to the paragraph of a regional guide that answers it"],
    },
    "company": {
        "make": lambda r: {
            "name": coin(r) + " " + r.choice(["Systems", "Industries", "Foods", "Labs", "Logistics"]),
            "founder": person(r), "year": r.randrange(1890, 2021), "city": coin(r, 3),
            "product": r.choice(["industrial sensors", "frozen pastries", "cargo drones", "accounting software",
                                 "bicycle frames", "hearing aids"]),
            "brand": coin(r), "ceo": person(r), "staff": r.randrange(40, 90000),
            "revenue": r.randrange(2, 900), "rival": coin(r) + " Group",
        },
        "aspects": {
            "founding": "{name} was founded in {year} by {founder} in a rented workshop in {city}. The first years "
                        "were difficult, and {founder} twice nearly sold the business before a large order arrived.",
            "products": "{name} makes {product}, sold mainly under the {brand} brand. Its products are designed in "
                        "{city} and assembled in two plants, and the company says it tests every unit before shipping.",
            "leadership": "{name} is led by chief executive {ceo}, who took over after a long career at {rival}. "
                          "The board of {name} meets four times a year, and {ceo} reports to the shareholders each spring.",
            "finances": "{name} employs about {staff} people and reported revenue of {revenue} million euros last year. "
                        "Its main competitor is {rival}. Profits of {name} have grown slowly, and it pays no dividend.",
        },
        "questions": {
            "founding": ["Who founded {name}?", "when was {name} established", "where did {name} start",
                         "{name} founder"],
            "products": ["What does {name} make?", "which brand does {name} sell under", "{name} products",
                         "What kind of goods does {name} produce?"],
            "leadership": ["Who is the CEO of {name}?", "who runs {name}", "{name} chief executive",
                           "Where did the head of {name} work before?"],
            "finances": ["How many employees does {name} have?", "{name} revenue last year",
                         "Who is the main competitor of {name}?", "is {name} profitable"],
        },
        "classify": {"product": "Classify a company profile by the kind of product the company makes"},
        "tasks": ["Given a question about a company, retrieve the passage of its profile that answers it",
                  "Retrieve the business-directory paragraph that answers an investor's question about a firm",
                  "Given a journalist's question about a business, find the paragraph with the answer",
                  "Match a short query about a company to the section of its company report that answers it"],
    },
    "species": {
        "make": lambda r: {
            "name": r.choice(["lesser", "greater", "common", "mountain", "marsh"]) + " " + coin(r).lower() + " "
                    + r.choice(["warbler", "vole", "orchid", "beetle", "newt", "shrike"]),
            "habitat": r.choice(["alpine meadows", "salt marshes", "old oak forests", "limestone caves", "river banks"]),
            "range": coin(r) + " Mountains", "food": r.choice(["seeds", "small insects", "snails", "nectar", "fungi"]),
            "size": r.randrange(2, 40), "eggs": r.randrange(2, 12), "season": r.choice(["spring", "early summer", "autumn"]),
            "colour": r.choice(["olive green", "rust red", "pale grey", "deep blue"]), "status": r.choice(
                ["least concern", "near threatened", "vulnerable", "endangered"]), "years": r.randrange(1, 15),
        },
        "aspects": {
            "habitat": "The {name} lives in {habitat} across the {range}. It avoids open farmland, and populations "
                       "of the {name} have declined where its habitat was drained or cut.",
            "diet": "The {name} feeds mostly on {food}, which it searches for at dawn and dusk. In winter, when "
                    "{food} are scarce, the {name} survives on stored reserves.",
            "breeding": "The {name} breeds in {season}. A female lays {eggs} eggs, and the young are independent "
                        "after a few weeks. Individuals of the {name} can live for {years} years in the wild.",
            "appearance": "The {name} is about {size} centimetres long and {colour}, with a paler underside. Its "
                          "conservation status is {status}, and the {name} is easily confused with related species.",
        },
        "questions": {
            "habitat": ["Where does the {name} live?", "{name} habitat", "in which mountains is the {name} found",
                        "Why is the {name} declining?"],
            "diet": ["What does the {name} eat?", "{name} diet", "when does the {name} feed",
                     "How does the {name} survive the winter?"],
            "breeding": ["When does the {name} breed?", "how many eggs does the {name} lay", "{name} lifespan",
                         "How long does the {name} live?"],
            "appearance": ["How big is the {name}?", "what colour is the {name}", "{name} conservation status",
                           "Is the {name} endangered?"],
        },
        "classify": {"habitat": "Classify a species description by the habitat the species lives in"},
        "tasks": ["Given a question about an animal or plant, retrieve the field-guide paragraph that answers it",
                  "Retrieve the encyclopedia passage about a species that answers a naturalist's question",
                  "Given a birdwatcher's or hiker's question, find the species account that answers it",
                  "Match a short query about wildlife to the section of a species profile that answers it"],
    },
    "novel": {
        "make": lambda r: {
            "name": "The " + r.choice(["Silent", "Last", "Winter", "Glass", "Hidden", "Broken"]) + " " + coin(r),
            "author": person(r), "year": r.randrange(1850, 2023), "town": coin(r, 3), "hero": r.choice(GIVEN),
            "job": r.choice(["lighthouse keeper", "schoolteacher", "detective", "ferry captain", "botanist"]),
            "secret": r.choice(["a forged will", "a lost brother", "a buried ship", "a stolen painting"]),
            "prize": coin(r) + " Prize", "copies": r.randrange(1, 90) * 10000, "genre": r.choice(
                ["crime novel", "historical novel", "love story", "science fiction novel"]),
        },
        "aspects": {
            "plot": "{name} follows {hero}, a {job} in {town}, who discovers {secret}. The search for the truth "
                    "turns the quiet life of {hero} upside down, and the ending of {name} is left open.",
            "author": "{name} was written by {author} and first published in {year}. {author} wrote it after "
                      "years as a journalist, and says the book grew out of stories heard in {town}.",
            "reception": "{name} won the {prize} and has sold about {copies} copies. Critics praised its "
                         "atmosphere but found the middle slow; {name} has been translated into twelve languages.",
            "setting": "{name} is a {genre} set in {town}, a harbour town battered by autumn storms. The town itself "
                       "is almost a character, and readers of {name} often visit the real coast that inspired it.",
        },
        "questions": {
            "plot": ["What is {name} about?", "who is the main character of {name}", "{name} plot",
                     "What does the hero of {name} discover?"],
            "author": ["Who wrote {name}?", "when was {name} published", "{name} author",
                       "What did the author of {name} do before writing it?"],
            "reception": ["Did {name} win any prize?", "how many copies has {name} sold", "{name} reviews",
                          "What did critics say about {name}?"],
            "setting": ["Where is {name} set?", "what genre is {name}", "{name} setting",
                        "Which town is {name} set in?"],
        },
        "classify": {"genre": "Classify a description of a novel by its genre"},
        "tasks": ["Given a reader's question about a book, retrieve the paragraph that answers it",
                  "Retrieve the library catalogue note that answers a question about a novel",
                  "Given a book-club question, find the passage from a literary guide that answers it",
                  "Match a short query about a novel to the section of its encyclopedia entry that answers it"],
    },
}


def entity(domain: dict, rng: random.Random) -> tuple[dict, dict[str, str]]:
    facts = domain["make"](rng)
    return facts, {aspect: text.format(**facts) for aspect, text in domain["aspects"].items()}


def examples(per_task: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    records: list[dict] = []

    def add(kind: str, task: str, query: str, positive: str, negative: str, domain: str) -> None:
        records.append({"id": f"facts-{len(records)}", "index": len(records), "kind": kind, "task": task,
                        "language": "English", "query": query, "positive": positive, "negative": negative,
                        "placeholders": {"domain": domain}, "raw": {}, "model": "bench/facts.py", "seed": seed})

    for domain_name, domain in DOMAINS.items():
        for t, task in enumerate(domain["tasks"]):
            for _ in range(per_task):
                facts, paragraphs = entity(domain, rng)
                aspect = rng.choice(list(paragraphs))
                # Each task words its questions its own way: task t leans on question template t.
                templates = domain["questions"][aspect]
                template = templates[t % len(templates)] if rng.random() < 0.7 else rng.choice(templates)
                other = rng.choice([a for a in paragraphs if a != aspect])
                add("short-long", task, template.format(**facts), paragraphs[aspect], paragraphs[other], domain_name)
        for field, task in domain["classify"].items():
            for _ in range(per_task):
                facts, paragraphs = entity(domain, rng)
                text = next(p for p in paragraphs.values() if str(facts[field]) in p)
                while True:
                    wrong, _ = entity(domain, rng)
                    if wrong[field] != facts[field]:
                        break
                add("long-short", task, text, str(facts[field]), str(wrong[field]), domain_name)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/facts/examples.jsonl"))
    parser.add_argument("--per-task", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    records = examples(args.per_task, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    print(f"{len(records)} examples ({len({r['task'] for r in records})} tasks) -> {args.out}")


if __name__ == "__main__":
    main()
