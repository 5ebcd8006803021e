"""forewarn's application shell: the ``forewarn`` command, its settings and the services it runs.

:mod:`forewarn.cli` parses the command line (one module per command in :mod:`forewarn.commands`),
:mod:`forewarn.settings` reads the configuration file and environment, :mod:`forewarn.workers`
wires and supervises core and rules, :mod:`forewarn.console` serves the support console.

Errors (:mod:`forewarn.errors`): the shell's own tree, and every package's tree beside it,
each reported by :func:`forewarn.cli.main` as one line on stderr and exit code 2::

    ForewarnError       anything the shell raises on purpose
    ├── ConfigError     a configuration or rules file that cannot be used
    └── ScoreError      a file or option ``forewarn score`` cannot use
    EdgeError           edge.errors      CoreError    core.errors
    RuleError           rules.errors
"""
