"""Reporters turn a Report into something to read: console text (rich), JSON, the CI gate's
verdict, HTML, JUnit, markdown. Only reporters and the CLI touch the console."""
