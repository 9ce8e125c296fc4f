"""Wording of the offline writer: hooks per angle and tone, calls to action, extra lines.

Rules every template keeps: the hook names the title; nothing claims sales,
awards, reviews, ratings or availability the book profile does not state;
a slot is only filled when the profile has a value for it, so a template with
an empty slot is skipped rather than rendered.

Slots: title, author, a_genre_read ("a fantasy read"), genre_read, a_genre_book,
themes ("found family and old magic"), audience, comps ("A or B"), line (a blurb
sentence), question (a blurb question), date ("March 3"), when ("tomorrow",
"on March 3"), days_phrase ("12 days"), offer (the profile's own offer wording).
"""

from __future__ import annotations

Templates = dict[str, tuple[str, ...]]

HOOKS: dict[str, Templates] = {
    "spotlight": {
        "warm": (
            "Say hello to {title}, {a_genre_book} by {author}.",
            "Introducing {title} by {author}.",
            "Here is a book to keep close: {title} by {author}.",
        ),
        "punchy": (
            "Meet {title} by {author}.",
            "One book to add today: {title} by {author}.",
            "New on the list: {title} by {author}.",
        ),
        "professional": (
            "Introducing {title}, {a_genre_book} by {author}.",
            "Spotlight: {title} by {author}.",
            "Now on our list: {title} by {author}.",
        ),
        "playful": (
            "Book crush alert! 😍 {title} by {author}.",
            "Add this to your cart, er, your TBR: {title} by {author}. 😉",
            "Drumroll, please! 🥁 Meet {title} by {author}.",
        ),
    },
    "question": {
        "warm": (
            "Looking for {a_genre_read} to curl up with? Meet {title} by {author}.",
            "Need a story to get lost in this week? {title} by {author} might be the one.",
            "Have you found your next {genre_read} yet? Say hello to {title} by {author}.",
            "{question} Find out in {title} by {author}.",
        ),
        "punchy": (
            "Need a new {genre_read}? Try {title} by {author}.",
            "Bored of your TBR? Fix it with {title} by {author}.",
            "Next read? {title} by {author}. Done.",
            "{question} {title} by {author} has the answer.",
        ),
        "professional": (
            "Seeking {a_genre_read} with depth? Consider {title} by {author}.",
            "Building your reading list for the season? Add {title} by {author}.",
            "Which {genre_read} belongs on your list next? We suggest {title} by {author}.",
            "{question} {title} by {author} takes up the question.",
        ),
        "playful": (
            "Is your TBR pile too small? 😄 Here is {title} by {author} to fix that.",
            "Who needs sleep when there is {title} by {author}? 🙋",
            "Psst. Looking for {a_genre_read}? {title} by {author} is waiting for you.",
            "{question} 🤔 Find out in {title} by {author}.",
        ),
    },
    "teaser": {
        "warm": (
            "Here is a peek at {title} by {author}. {line}",
            "A little about {title} by {author}: {line}",
            "{line} Meet {title} by {author}.",
        ),
        "punchy": (
            "{line} {title}. By {author}.",
            "{title} by {author}, in one line: {line}",
            "{line} That's {title} by {author}.",
        ),
        "professional": (
            "About {title} by {author}: {line}",
            "{title} by {author}, in brief: {line}",
            "{line} Discover {title} by {author}.",
        ),
        "playful": (
            "Sneak peek time! 👀 {line} That's {title} by {author}.",
            "Spoiler-free teaser for {title} by {author}: {line}",
            "{line} Intrigued? Meet {title} by {author}. ✨",
        ),
    },
    "readers_who": {
        "warm": (
            "For readers who love {themes}: {title} by {author}.",
            "If you love {themes}, {title} by {author} is for you.",
            "Made for {audience}: {title} by {author}.",
        ),
        "punchy": (
            "Love {themes}? Read {title} by {author}.",
            "Into {themes}? {title} by {author} is your book.",
            "For {audience}: {title} by {author}.",
        ),
        "professional": (
            "Written for readers interested in {themes}: {title} by {author}.",
            "{title} by {author} speaks to {audience}.",
            "A fit for readers who value {themes}: {title} by {author}.",
        ),
        "playful": (
            "Calling all fans of {themes}! 📣 {title} by {author} is for you.",
            "If you're into {themes}, {title} by {author} has your name on it. 😉",
            "Hey, {audience}! This one's for you: {title} by {author}. 🎉",
        ),
    },
    "comparables": {
        "warm": (
            "If you loved {comps}, meet {title} by {author}.",
            "Fans of {comps} may find a new favourite in {title} by {author}.",
            "For anyone who treasured {comps}: {title} by {author}.",
        ),
        "punchy": (
            "Loved {comps}? Read {title} by {author}.",
            "Into {comps}? Try {title} by {author}.",
            "Finished {comps}? {title} by {author} is next.",
        ),
        "professional": (
            "For readers of {comps}: {title} by {author}.",
            "Readers who enjoyed {comps} should consider {title} by {author}.",
            "In the tradition of {comps}: {title} by {author}.",
        ),
        "playful": (
            "Finished {comps} and need more? 🙌 Meet {title} by {author}.",
            "Fans of {comps}, your next obsession is here: {title} by {author}. 🤩",
            "Loved {comps}? Then {title} by {author} is calling your name. 📚",
        ),
    },
    "behind_the_scenes": {
        "warm": (
            "From {author}'s desk: a closer look at {title}.",
            "A peek behind the pages of {title} by {author}.",
            "Pull up a chair for a closer look at {title} by {author}.",
        ),
        "punchy": (
            "Behind the scenes: {title} by {author}.",
            "Inside {title} by {author}.",
            "What drives {title} by {author}? {Themes}.",
        ),
        "professional": (
            "A closer look at {title} by {author}.",
            "Key themes in {title} by {author}: {themes}.",
            "Inside the pages of {title} by {author}.",
        ),
        "playful": (
            "Backstage pass! 🎟️ A peek inside {title} by {author}.",
            "Lifting the curtain on {title} by {author}. 🎭",
            "Come closer, here is what {title} by {author} is about. 🤫",
        ),
    },
    "launch_countdown": {
        "warm": (
            "Only {days_phrase} until {title} by {author} is out.",
            "Mark your calendar: {title} by {author} arrives {when}.",
            "Counting down: {title} by {author} comes out {when}.",
        ),
        "punchy": (
            "{days_phrase} to go. {title} by {author} lands {when}.",
            "Save the date: {date}. {title} by {author}.",
            "Coming {when}: {title} by {author}.",
        ),
        "professional": (
            "{title} by {author} will be released on {date}.",
            "Release date: {date}. {title} by {author}.",
            "Coming {when}: {title} by {author}.",
        ),
        "playful": (
            "The countdown is on! ⏳ {days_phrase} until {title} by {author}.",
            "Clear your schedule for {date}. 🗓️ {title} by {author} is coming.",
            "Tick tock! {title} by {author} drops {when}. 🎉",
        ),
    },
    "release_day": {
        "warm": (
            "Today is release day for {title} by {author}.",
            "{title} by {author} is out in the world today.",
            "It's here! {title} by {author} is out today.",
        ),
        "punchy": (
            "Out today: {title} by {author}.",
            "Release day. {title} by {author}. Go.",
            "It's launch day for {title} by {author}!",
        ),
        "professional": (
            "{title} by {author} is published today.",
            "Out today: {title} by {author}.",
            "Today marks the release of {title} by {author}.",
        ),
        "playful": (
            "Release day dance! 💃 {title} by {author} is out today.",
            "Happy book birthday to {title} by {author}! 🎂",
            "It's HERE! 🎉 {title} by {author} is out today.",
        ),
    },
    "review_request": {
        "warm": (
            "Have you read {title} by {author}? A short review helps other readers find it.",
            "If {title} by {author} found a place on your shelf, a few words in a review would mean a lot.",
            "Finished {title} by {author}? Sharing your thoughts in a review helps the book find its readers.",
        ),
        "punchy": (
            "Read {title} by {author}? Leave a quick review.",
            "Finished {title}? Two lines in a review help a lot.",
            "Reviews keep books alive. Read {title} by {author}? Share yours.",
        ),
        "professional": (
            "If you have read {title} by {author}, an honest review helps other readers decide.",
            "Reader reviews help books like {title} by {author} reach their audience.",
            "Your review of {title} by {author} helps others discover it.",
        ),
        "playful": (
            "Read {title} by {author}? Your review is basically a hug for the book. 🤗",
            "Finished {title}? Tell the world in a review! 💬",
            "Reviews are magic. ✨ If you've read {title} by {author}, leave one today.",
        ),
    },
    "deal": {
        "warm": (
            "Good news for your reading list: {offer}, {title} by {author}.",
            "A little treat for you: {offer}. {title} by {author}.",
        ),
        "punchy": (
            "Deal alert: {offer}. {title} by {author}.",
            "{offer}: {title} by {author}. Don't wait.",
        ),
        "professional": (
            "Current offer on {title} by {author}: {offer}.",
            "{title} by {author}, current offer: {offer}.",
        ),
        "playful": (
            "Treat yourself! 🛍️ {offer}: {title} by {author}.",
            "Your wallet will thank you. 💸 {offer}: {title} by {author}.",
        ),
    },
}

# A minimal hook for when nothing richer fits the platform.
COMPACT_HOOKS: dict[str, str] = {
    "warm": "Meet {title} by {author}.",
    "punchy": "{title} by {author}.",
    "professional": "{title} by {author}.",
    "playful": "Meet {title} by {author}! 📚",
}

CTA_LINK: Templates = {
    "warm": ("Find it here: {link}", "Take a look: {link}", "Have a look: {link}"),
    "punchy": ("Get it: {link}", "Read more: {link}", "Check it out: {link}"),
    "professional": ("Learn more: {link}", "Details: {link}", "More about the book: {link}"),
    "playful": ("Your next read awaits 👉 {link}", "Go on, take a peek 👀 {link}", "Tap to meet it: {link}"),
}

CTA_LINK_IN_BIO: Templates = {
    "warm": ("Link in bio.", "Find it through the link in bio.", "Tap the link in bio to find it."),
    "punchy": ("Link in bio.", "Tap the link in bio.", "Link in bio. Go."),
    "professional": ("Details via the link in bio.", "Link in bio for details.", "See the link in bio."),
    "playful": ("Link in bio, you know the drill! 😉", "Run, don't walk, to the link in bio. 🏃", "Tap the link in bio! ✨"),
}

# Used on a platform whose links are clickable but where the link itself cannot fit.
CTA_LINK_IN_PROFILE: Templates = {
    "warm": ("Link in profile.", "Find it through the link in profile.", "Tap the link in profile to find it."),
    "punchy": ("Link in profile.", "Link in profile. Go.", "Tap the link in profile."),
    "professional": ("Details via the link in profile.", "Link in profile for details.", "See the link in profile."),
    "playful": ("Link in profile! 😉", "Hop over to the link in profile. 🐇", "The link in profile is calling! ✨"),
}

CTA_NO_LINK: Templates = {
    "warm": ("Add it to your reading list.", "Save this one for later.", "Keep it in mind for your next read."),
    "punchy": ("Add it to your list.", "Save it. Read it.", "Put it on your list."),
    "professional": ("Add it to your reading list.", "Worth noting for your next reading list.", "Save this for later."),
    "playful": ("Add it to your TBR! 📚", "Your TBR called. It wants this one. 📞", "Screenshot this for later! 📸"),
}

# Optional lines that add context after the blurb sentences.
EXTRA_LINES: dict[str, Templates] = {
    "themes": {
        "warm": ("Expect {themes}.", "Inside: {themes}."),
        "punchy": ("Think {themes}.", "{Themes}. All in one book."),
        "professional": ("Key themes: {themes}.", "Themes: {themes}."),
        "playful": ("Expect {themes}. 🔥", "Featuring {themes}!"),
    },
    "audience": {
        "warm": ("Written for {audience}.",),
        "punchy": ("For {audience}.",),
        "professional": ("Intended for {audience}.",),
        "playful": ("Perfect for {audience}!",),
    },
    "comps": {
        "warm": ("For fans of {comps}.",),
        "punchy": ("For fans of {comps}.",),
        "professional": ("For readers of {comps}.",),
        "playful": ("Loved {comps}? This one's for you.",),
    },
    "launch_future": {
        "warm": ("Out {when}.",),
        "punchy": ("Out {when}.",),
        "professional": ("Release date: {date}.",),
        "playful": ("Out {when}! 🗓️",),
    },
    "launch_today": {
        "warm": ("Out today.",),
        "punchy": ("Out today.",),
        "professional": ("Published today.",),
        "playful": ("Out today! 🎉",),
    },
    "launch_past": {
        "warm": ("Out now.",),
        "punchy": ("Out now.",),
        "professional": ("Available now.",),
        "playful": ("Out now! 🙌",),
    },
}

# The tone to borrow wording from when a book's own tone has run out of fresh options.
NEIGHBOUR_TONE = {"warm": "playful", "playful": "warm", "punchy": "professional", "professional": "punchy"}
