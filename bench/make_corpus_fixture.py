"""Writes tests/fixtures/corpus, the folder tests/test_corpus_ingest.py ingests (the files are committed).

    python bench/make_corpus_fixture.py

A few documents of every format corpus ingest reads, written here (no outside text): Markdown with
headings and a paragraph long enough to be cut into windows, plain text with CRLF line ends, JSON
lines (an exact repeat, a short one, lines that are no document), a nested text file that nearly
repeats one of them, HTML with script, style and a menu, text in Latin-1, in UTF-16 with its
byte-order mark and in cp1251, a two-page PDF written by hand; and what must be skipped: an empty
file, one of blank lines, a binary one, hidden files, other formats.
"""

import json
import zlib
from pathlib import Path

root = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "corpus"

guide_intro = ("Good coffee at home needs four things: fresh beans, clean water, the right grind and a little "
               "patience. None of them costs much, and each one changes the cup more than the price of the "
               "machine does. This guide walks through them in the order you meet them in the morning.")
guide_beans = ("Buy whole beans roasted within the last month and keep them in an airtight jar away from light "
               "and heat. Ground coffee goes stale within days because the oils that carry its aroma meet the air "
               "over a much larger surface. Grind only what you will brew.")
guide_water = ("Water is most of the cup. If your tap water tastes of chlorine or leaves scale in the kettle, "
               "a simple jug filter is enough. Heat it to just below boiling, about ninety-three degrees, "
               "because boiling water pulls bitter compounds out of the grounds.")
# One long paragraph (cut into overlapping windows): about 330 words.
guide_long_sentences = [
    "The grind decides how quickly water extracts the coffee, and so it has to match the brewing method.",
    "A French press steeps the grounds for four minutes, so it wants a coarse grind that looks like sea salt; a finer grind would turn the cup muddy and bitter and would slip through the metal mesh.",
    "A pour-over cone lets the water run through in about three minutes, which suits a medium grind close to table salt.",
    "An espresso machine pushes water through a packed puck in under thirty seconds at high pressure, and only a very fine grind, almost like flour, slows the water enough to extract anything.",
    "Blade grinders chop the beans unevenly, leaving dust and boulders in the same batch: the dust over-extracts while the boulders under-extract, and the cup tastes bitter and sour at once.",
    "A burr grinder crushes the beans between two plates set a fixed distance apart, so the particles come out much the same size, which is the single largest improvement most home brewers can make.",
    "Hand burr grinders cost less than electric ones and are quiet, though grinding enough for two cups takes a minute of turning.",
    "Whatever grinder you use, change one thing at a time: if the cup is sour, grind a little finer; if it is bitter, grind a little coarser; and write down what you did, because after a week nobody remembers which setting made the good cup.",
    "Weighing the beans and the water with a kitchen scale helps for the same reason, since a scoop of a dark roast weighs less than a scoop of a light one.",
    "A ratio of one gram of coffee to sixteen grams of water is a sound place to start for filter coffee, and most people settle somewhere between fifteen and seventeen after a few mornings of tasting.",
    "Espresso runs much stronger, nearer one to two, and is far less forgiving of small changes.",
]
guide_end = "Above all, clean the equipment every week: old oils spoil fresh beans."

notes_paras = [
    "The garden committee met on Tuesday evening in the library annex. Eleven members attended, and the "
    "treasurer reported that the spring plant sale raised enough to replace the broken water butt and to buy "
    "two new wheelbarrows, with a small amount left over for seeds.",
    "Volunteers are still needed for the Saturday watering rota during July and August. Anyone who can spare an "
    "hour in the morning should add their name to the sheet on the shed door, and the keys can be collected "
    "from the caretaker at the front desk of the annex.",
    "The compost bays have become too full to turn. The committee agreed to hire a small shredder for one "
    "weekend in September, and asked members to stop adding woody stems until then, since those take years "
    "to break down and block the air that the heap needs.",
    "The next meeting will be held on the first Tuesday of the month. Members who wish to raise an item should "
    "send it to the secretary a week before, so that it can be added to the agenda and circulated with the "
    "minutes of this meeting.",
]

original = ("The library lends more than books. Members can borrow a sewing machine, a set of camping cooking pots, "
            "a telescope for watching the night sky, a pressure washer, board games for a family evening, and even "
            "a small projector with a folding screen for a backyard film night. Each item can be kept for two weeks "
            "and renewed once online if nobody else has reserved it. Items are checked for safety when they come "
            "back, and a short printed guide travels with each of them, so that someone who has never used such a "
            "tool can find out how before the first time. The collection grows every year with suggestions from "
            "members, and the most requested item last year was a bread maker.")
near_copy = original.replace("kept for two weeks", "kept for three weeks")
article_one = ("City buses will run on a Sunday timetable during the public holiday next Monday. The night routes "
               "that normally stop at midnight will run until two in the morning, because the fireworks in the park "
               "end late and the council expects large crowds. Tickets bought through the app remain valid for "
               "ninety minutes on any route, including the night routes, and children under twelve travel free when "
               "they are with an adult who holds a valid ticket.")
short_doc = "Closed for stocktaking on Friday afternoon."

html = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Repair Caf&eacute; opening hours</title>
  <style>body { font-family: sans-serif; } .hidden { display: none; }</style>
  <script>window.analytics = { track: function () { return "tracking code, not text"; } };</script>
</head>
<body>
  <nav><a href="/">Home</a> <a href="/events">Events</a></nav>
  <h1>Repair Caf&eacute;</h1>
  <p>Bring your broken toasters, lamps, bicycles and clothes to the community hall on the last Saturday of
     every month. Volunteer fixers will   help you   repair them for free, and you keep what you learn.</p>
  <p>Tea &amp; cake are served all afternoon.<br>Donations go to the hall's heating fund.</p>
  <ul>
    <li>Electrical repairs: ten until one</li>
    <li>Bicycles and textiles: ten until four</li>
  </ul>
  <table><tr><th>Month</th><th>Date</th></tr><tr><td>March</td><td>29</td></tr></table>
  <script type="text/javascript">document.write("never shown");</script>
  <noscript>Please enable JavaScript.</noscript>
</body>
</html>
"""

latin1 = ("Le marché du village ouvre à sept heures chaque samedi. On y trouve des légumes frais, du pain de "
          "campagne, du fromage de chèvre et des fleurs coupées. Les producteurs viennent des fermes voisines, et "
          "beaucoup d'entre eux vendent là depuis plus de vingt ans. En été, un café installe des tables sous les "
          "platanes de la place, où l'on peut goûter une crème brûlée très appréciée des habitués.")
utf16 = ("Die Stadtbücherei bleibt während der Renovierung bis Ende März geschlossen. Ausgeliehene Bücher können "
         "in den Rückgabekasten am Rathaus geworfen werden, und die Leihfristen werden automatisch verlängert. "
         "Für Schülerinnen und Schüler öffnet ein kleiner Lesesaal im Gemeindezentrum, wo auch die Zeitschriften "
         "ausliegen. Wir danken für Ihre Geduld und freuen uns auf die größeren, helleren Räume.")
cp1251 = ("Городская библиотека временно закрыта на ремонт до конца марта. Взятые книги можно вернуть в ящик у "
          "здания мэрии, а сроки возврата будут продлены автоматически. Для школьников работает небольшой "
          "читальный зал в доме культуры, где также можно прочитать свежие газеты и журналы. Благодарим за "
          "терпение и ждём вас в новых, более светлых залах.")


def pdf(pages):
    """A PDF of text pages (Helvetica, one line a sentence): the smallest file pypdf reads as a real one."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
        for line in lines:
            ops.append("(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode("latin-1") + stream + b"\nendstream")
        content = len(objects)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
                       f"/Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(len(objects))
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        body = body if isinstance(body, bytes) else body.encode("latin-1")
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


pdf_pages = [
    ["Annual report of the allotment society.",
     "Forty-two plots were let this year, and the waiting list fell to nine names.",
     "The new water pipe along the north path was laid in April by members themselves,",
     "which saved the society the cost of a contractor."],
    ["Plans for next year.",
     "The society will build a second tool shed near the east gate and repair the fence",
     "along the railway, where deer got in twice during the autumn and ate the winter cabbages."],
]

files = {
    "guide.md": ("# Brewing coffee at home\n\n" + guide_intro + "\n\n## Beans\n\n" + guide_beans + "\n\n## Water\n\n"
                 + guide_water + "\n\n## Grind\n\n" + " ".join(guide_long_sentences) + "\n\n" + guide_end + "\n").encode(),
    "notes.txt": ("\r\n\r\n".join(notes_paras) + "\r\n").encode(),
    "articles.jsonl": "".join(line + "\n" for line in [
        json.dumps({"id": 1, "text": article_one}),
        json.dumps({"id": 2, "text": original}, ensure_ascii=False),
        "this line is not JSON",
        json.dumps({"id": 4, "title": "a record with no text field"}),
        json.dumps({"id": 5, "text": article_one}),
        json.dumps({"id": 6, "text": short_doc}),
        json.dumps({"id": 7, "text": "   "}),
        json.dumps({"id": 8, "text": 42}),
    ]).encode(),
    "nested/deeper/faq.txt": (near_copy + "\n").encode(),
    "page.html": html.encode(),
    "legacy/latin1.txt": (latin1 + "\n").encode("latin-1"),
    "legacy/utf16.txt": (utf16 + "\n").encode("utf-16"),  # with its byte-order mark
    "legacy/cp1251.txt": (cp1251 + "\n").encode("cp1251"),
    "report.pdf": pdf(pdf_pages),
    "empty.txt": b"",
    "blank.md": b"  \n\n \t \n",
    "binary.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + zlib.compress(bytes(range(256)) * 8),
    ".draft.md": ("A hidden draft, never read. " * 10).encode(),
    ".private/secret.txt": ("A file in a hidden folder, never read. " * 10).encode(),
    "script.py": b"print('not a document')\n",
    "data.csv": b"month,date\nMarch,29\n",
}
for name, data in files.items():
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
print(f"wrote {len(files)} files to {root}")
