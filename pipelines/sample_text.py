"""Seeded text for the built-in sample crawl: English prose by subject, and fixed non-English articles."""
from __future__ import annotations

import random

SUBJECTS = [
    {"slug": "gardening", "topic": "the community garden", "people": "volunteers", "things": ["tomatoes", "compost bins", "raised beds", "bean poles", "seed trays"], "place": "the old railway yard"},
    {"slug": "astronomy", "topic": "the observatory", "people": "amateur astronomers", "things": ["telescopes", "star charts", "meteor counts", "camera mounts", "dark skies"], "place": "the hill above the town"},
    {"slug": "cycling", "topic": "the new cycle lane", "people": "commuters", "things": ["bicycles", "traffic lights", "bike racks", "cargo bikes", "repair stands"], "place": "the river road"},
    {"slug": "library", "topic": "the public library", "people": "readers", "things": ["books", "reading rooms", "study desks", "local archives", "story hours"], "place": "the market square"},
    {"slug": "bakery", "topic": "the family bakery", "people": "bakers", "things": ["sourdough loaves", "rye starters", "wood ovens", "pastry trays", "flour sacks"], "place": "the high street"},
    {"slug": "rail", "topic": "the regional railway", "people": "passengers", "things": ["timetables", "night trains", "station platforms", "signal boxes", "ticket machines"], "place": "the valley line"},
    {"slug": "water", "topic": "the water utility", "people": "engineers", "things": ["pipes", "pumping stations", "leak sensors", "reservoirs", "meters"], "place": "the northern district"},
    {"slug": "school", "topic": "the primary school", "people": "teachers", "things": ["lesson plans", "science kits", "playgrounds", "reading groups", "school lunches"], "place": "the east side"},
    {"slug": "museum", "topic": "the maritime museum", "people": "curators", "things": ["ship models", "old maps", "diving helmets", "harbour photographs", "logbooks"], "place": "the harbour front"},
    {"slug": "birds", "topic": "the wetland reserve", "people": "birdwatchers", "things": ["herons", "reed beds", "nesting boxes", "migration records", "hides"], "place": "the estuary"},
    {"slug": "chess", "topic": "the chess club", "people": "players", "things": ["opening books", "clocks", "tournament results", "endgame studies", "rating lists"], "place": "the church hall"},
    {"slug": "forest", "topic": "the forest restoration project", "people": "foresters", "things": ["oak saplings", "deer fences", "soil samples", "fallen logs", "trail markers"], "place": "the upper valley"},
]

OPENERS = [
    "Over the past {n} years, {people} at {topic} have changed the way the town thinks about {thing}.",
    "When {topic} first opened near {place}, few people expected so much interest in {thing}.",
    "According to the {people} who run {topic}, the most common question is about {thing}.",
    "It is not often that {thing} make the local news, but {topic} has managed it again this {season}.",
]
MIDDLES = [
    "Most of the work happens early in the morning, before the {people} head off to their other jobs.",
    "The group keeps careful notes, and those records now cover more than {n} seasons.",
    "A small grant from the council paid for new {thing}, and the rest came from donations.",
    "Visitors are often surprised by how much planning goes into something as simple as {thing}.",
    "One volunteer explained that the hardest part is not the labour but the patience it demands.",
    "There have been setbacks, including a wet spring that delayed everything by several weeks.",
    "Local schools now send pupils to learn how {thing} are looked after and why it matters.",
    "Sharing what they know has been as rewarding as the work itself, according to several members.",
    "Questions come from all over the region, and each one gets a written answer.",
    "Because the site sits close to {place}, the weather can change quickly and plans must adapt.",
    "Every change was measured with care, and the numbers show a steady improvement since {year}.",
    "Some of the older members remember when {place} looked very different.",
    "Nobody is paid for this, yet attendance rarely drops below {n} on a busy weekend.",
    "The budget is tiny, so most tools were borrowed, repaired or built from scrap.",
    "A retired engineer drew up the first plans on the back of an envelope in {year}.",
    "Neighbours who once complained about the noise now drop by with coffee and advice.",
    "Last year a storm knocked over half of the {thing}, and it took a month to recover.",
    "The local paper ran a long feature on the project, which brought a wave of new helpers.",
    "Insurance was the biggest headache at the start, and it still takes up a surprising amount of time.",
    "Children seem to enjoy it most, especially when they are allowed to get their hands dirty.",
    "Experts from the university visit twice a year to check the results and suggest improvements.",
    "What began as a weekend hobby has turned into something close to a second career for some.",
    "Records are shared openly online so that similar groups in other towns can learn from them.",
    "The oldest participant is over ninety and still arrives before anyone else.",
    "Winter is the quiet season, used mainly for repairs, planning and long discussions over tea.",
    "A local firm recently offered to sponsor the {thing}, which will pay for the next two years.",
    "Some ideas failed completely, and the group is refreshingly honest about those mistakes.",
    "The town council has asked whether the model could be copied in {n} other neighbourhoods.",
    "Safety training is compulsory, even for short visits, and nobody has been hurt so far.",
    "Each autumn there is a small festival to thank everyone who helped during the year.",
]
CLOSERS = [
    "Anyone who wants to help is welcome to come along on a {day} morning.",
    "The next open day is planned for {season}, and the organisers hope to see new faces.",
    "For now, the {people} are simply happy that {thing} have found a permanent home.",
    "As one of them put it, the work is never finished, and that is exactly the point.",
]
SEASONS = ["spring", "summer", "autumn", "winter"]
DAYS = ["Saturday", "Sunday", "Wednesday", "Friday"]


def _fill(template: str, rng: random.Random, subject: dict) -> str:
    """One sentence with the subject's words and seeded numbers."""
    return template.format(
        n=rng.randint(3, 40), people=subject["people"], topic=subject["topic"], place=subject["place"],
        thing=rng.choice(subject["things"]), season=rng.choice(SEASONS), day=rng.choice(DAYS),
        year=rng.randint(1995, 2024),
    )


def english_paragraphs(rng: random.Random, subject: dict, n: int) -> list[str]:
    """n paragraphs, no sentence used twice (like a real article), opener first and closer last."""
    middles = rng.sample(MIDDLES, 3 * n)
    paragraphs = []
    for i in range(n):
        parts = ([rng.choice(OPENERS)] if i == 0 else []) + middles[3 * i:3 * i + 3]
        parts += [rng.choice(CLOSERS)] if i == n - 1 else []
        paragraphs.append(" ".join(_fill(t, rng, subject) for t in parts))
    return paragraphs


def headline(rng: random.Random, subject: dict) -> str:
    """A short title for an article."""
    return f"{subject['topic'].capitalize()} and its {rng.choice(subject['things'])}"


FOREIGN = {
    "de": ("nachrichten.example.de", "Der neue Radweg am Fluss", [
        "Seit dem Frühjahr können Pendler den neuen Radweg entlang der Uferstraße nutzen, und die ersten Zahlen sind ermutigend.",
        "Nach Angaben der Stadtverwaltung fahren an Werktagen inzwischen mehr als zweitausend Menschen über die Strecke, deutlich mehr als erwartet.",
        "Die Anwohner hatten lange für eine sichere Verbindung zwischen dem Bahnhof und der Altstadt gekämpft, weil der Verkehr auf der alten Straße gefährlich war.",
        "Im nächsten Jahr soll der Weg bis zum Gewerbegebiet verlängert werden, sofern die Finanzierung durch das Land gesichert ist.",
        "Kritiker bemängeln allerdings, dass an einigen Kreuzungen noch immer keine eigenen Ampeln für Radfahrer vorhanden sind.",
    ]),
    "fr": ("journal.example.fr", "La bibliothèque municipale rouvre ses portes", [
        "Après dix-huit mois de travaux, la bibliothèque municipale a rouvert ses portes samedi matin devant une foule de lecteurs impatients.",
        "Les salles de lecture ont été entièrement rénovées et un nouvel espace consacré aux archives locales a été aménagé au premier étage.",
        "Selon la directrice, le nombre d'inscriptions a doublé pendant la première semaine, ce qui dépasse toutes les prévisions de l'équipe.",
        "Des ateliers pour les enfants et des rencontres avec des auteurs de la région sont prévus chaque mercredi après-midi jusqu'à la fin de l'année.",
        "La municipalité espère que ce lieu deviendra un point de rencontre pour tous les habitants du quartier.",
    ]),
    "es": ("diario.example.es", "La panadería familiar cumple cien años", [
        "La panadería de la calle mayor celebra este mes su centenario con una semana de puertas abiertas y degustaciones gratuitas.",
        "La cuarta generación de la familia sigue utilizando el mismo horno de leña que instaló el bisabuelo en los años veinte.",
        "Los vecinos recuerdan que durante los inviernos más duros la panadería era el único lugar caliente del barrio.",
        "Hoy la tienda vende pan de masa madre, empanadas y dulces tradicionales que se preparan cada madrugada a partir de las cuatro.",
        "Los dueños aseguran que el secreto no está en la receta, sino en la paciencia y en el cariño con que se trabaja la masa.",
    ]),
}
