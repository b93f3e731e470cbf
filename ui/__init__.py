"""The pygame touch UI of the kiosk: screens, widgets, theme and translations (ko, en).

Public API: `Display`, `Status`, `PanelButton`, `Frame` (ui.display), `t` and `reason_text`
(ui.i18n), `korean_font_available` (ui.theme). Imports only the standard library, pygame and the
kiosk core (session, rules, identifiers).
"""

import os

# Keep the kiosk's journal clean: pygame prints a banner on import unless told not to.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from ui.display import Display, Frame, PanelButton, Status
from ui.i18n import reason_text, t
from ui.theme import korean_font_available

__all__ = ["Display", "Frame", "PanelButton", "Status", "korean_font_available", "reason_text", "t"]
