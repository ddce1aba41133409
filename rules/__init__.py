"""The rule engine: conditions and actions as data, evaluated without Flask, a database or I/O.

It is filled in by the rules issue; ``server`` may import it, it never imports ``server``.
"""
