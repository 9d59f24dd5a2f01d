"""OI alerts (issue #15): rules from ``OI_ALERTS_FILE`` (TOML), evaluated on every new view, stored with the session,
sent to Telegram once.

Rules (see ``examples/alerts.toml``) are validated at start-up by :func:`load_rules`: a bad rule is a
:class:`~oi.config.ConfigError` whose one line names the rule. Kinds:

* ``oi_change`` — |OI now − OI ``interval`` minutes ago| ≥ ``threshold`` (``unit`` units or lots) at a strike's
  ``leg`` (ce/pe/both), labelled by the build-up it signals from the leg's price change over the same interval:
  price↑ OI↑ long build-up, price↓ OI↑ short build-up, price↑ OI↓ short covering, price↓ OI↓ long unwinding;
* ``pcr_cross`` — PCR crossing ``level`` (``direction`` up/down/both);
* ``max_pain_shift`` — max pain ≥ ``strikes`` chain strikes away from where it was when the rule last fired for
  that view (or from the session's first frame);
* ``level_cross`` — spot crossing the support and/or resistance strike (:func:`oi.analytics.levels`);
* ``wall`` — a strike leg's OI reaching ``share`` % of the chain's total OI of that side (it was below before).

Only the process holding the refresher lease evaluates (:meth:`Alerts.after_sync`, called by ``Service.tick``), and
only views whose chain changed since it last looked. An event fires once per (rule, symbol, expiry, strike,
direction) within the rule's cooldown (counted in market time, the chains' ``as_of``). "Once" holds across workers,
processes and lease hand-overs because the store decides: each firing of a key is the next number in that key's
sequence, inserted under a deterministic id (``Store.insert_event``), so two processes racing for the same firing
collide on the id and only the winner sends; and a new leader loads the day's events before it evaluates, so it
knows every key's last firing and cooldown. Every process keeps the day's events in memory (:class:`EventLog`),
re-read only when the store's event counter moves, so ``/api/events`` never queries the store.
"""

from oi.alerts.engine import Alerts, buildup
from oi.alerts.events import EventLog, public, session_events, view_url
from oi.alerts.rules import KINDS, Rule, load_rules, parse_rule

__all__ = [
    "KINDS",
    "Alerts",
    "EventLog",
    "Rule",
    "buildup",
    "load_rules",
    "parse_rule",
    "public",
    "session_events",
    "view_url",
]
