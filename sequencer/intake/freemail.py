"""Free-mail providers: an address there says nothing about the person's company.

Prospects on these domains get no shared account (otherwise every gmail.com prospect
would be "colleagues"), and a rule that stops a whole account stops only the sender's
own enrollment for them.
"""

from __future__ import annotations

FREEMAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "live.com", "msn.com",
        "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "ymail.com", "aol.com", "icloud.com", "me.com",
        "mac.com", "proton.me", "protonmail.com", "pm.me", "gmx.de", "gmx.net", "gmx.com", "web.de",
        "t-online.de", "mail.com", "zoho.com", "yandex.ru", "yandex.com", "mail.ru", "qq.com", "163.com",
        "126.com", "naver.com", "orange.fr", "free.fr", "laposte.net", "libero.it", "virgilio.it",
        "seznam.cz", "wp.pl", "o2.pl", "fastmail.com", "hey.com", "tutanota.com", "comcast.net",
        "verizon.net", "att.net", "btinternet.com", "sky.com", "bigpond.com", "rediffmail.com",
    }
)


def is_freemail(domain: str) -> bool:
    return domain.strip().lower().rstrip(".") in FREEMAIL_DOMAINS
