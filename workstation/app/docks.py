"""The main window's docked panels: Patients (the browser) on the left; Structures (the table, with
Add and Delete) and Tool settings (a page per tool) on the right; Messages and DVH tabbed at the
bottom, hidden until asked for. The window takes the panels as its own (window.browser, .table,
.messages, .dvh_panel); their signals go to the window and its helpers (opening, commands)."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from workstation.app.browser import PatientBrowser
from workstation.app.dvh_panel import DvhPanel
from workstation.app.messages import MessagesPanel
from workstation.app.on_screen import keep_on_screen
from workstation.app.structure_table import StructureTable

NAVIGATE_TIP = (
    "Navigate: left-click moves the crosshair.\n"
    "Wheel scrolls, Ctrl+wheel zooms, right-drag sets\n"
    "window/level, middle-drag pans."
)


class WindowDocks:
    """A main window's panels and the docks holding them, and the tool settings page shown."""

    def __init__(self, window):
        self.window = window
        self.browser = PatientBrowser(window)
        self.browser.series_activated.connect(window.opening.load_series)
        self.browser_dock = self._dock(
            "Patients", "patients", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea
        )

        panel = QWidget(window)
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(4, 4, 4, 4)
        self.table = StructureTable(panel)
        self.table.active_changed.connect(window.on_active_structure)
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add", panel)
        self.add_button.setToolTip("Add an empty structure to draw in")
        self.add_button.clicked.connect(lambda: window.commands.add_structure())
        self.delete_button = QPushButton("Delete", panel)
        self.delete_button.clicked.connect(window.commands.delete_structure)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.delete_button)
        layout.addLayout(buttons)
        self.structures_dock = self._dock(
            "Structures", "structures", panel, Qt.DockWidgetArea.RightDockWidgetArea
        )

        self.tool_options = QStackedWidget(window)
        #: the settings page of each tool, by key (None: navigating)
        self.tool_pages = {None: QLabel(NAVIGATE_TIP, window)}
        self.tool_options.addWidget(self.tool_pages[None])
        for key, tool in window.tools.tools.items():
            page = tool.options(self.tool_options) or QLabel(tool.tip, window)
            self.tool_pages[key] = page
            self.tool_options.addWidget(page)
        self._dock("Tool settings", "tool-settings", self.tool_options, Qt.DockWidgetArea.RightDockWidgetArea)

        self.messages = MessagesPanel(window)
        self.messages_dock = self._dock(
            "Messages", "messages", self.messages, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.messages_dock.hide()

        self.dvh_panel = DvhPanel(window)
        self.dvh_dock = self._dock("DVH", "dvh", self.dvh_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        window.tabifyDockWidget(self.messages_dock, self.dvh_dock)
        self.dvh_dock.hide()
        self.messages.button.clicked.connect(self.show_messages)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self.window)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.window.addDockWidget(area, dock)
        keep_on_screen(dock)
        return dock

    def show_messages(self) -> None:
        """Open the Messages panel (every warning and error of this session)."""
        self.messages_dock.show()
        self.messages_dock.raise_()

    def show_tool_page(self, key: str | None) -> None:
        """Show the settings of the tool `key` (None: navigating)."""
        self.tool_options.setCurrentWidget(self.tool_pages[key])
