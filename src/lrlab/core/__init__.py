"""The domain core, torch-free and below everything that trains, stores or draws: the typed
records (``records``: ``RunConfig``, ``RunRecord``, ``RunStatus``, ``Objective``, step
series, range-test records), the one ranking (``ranking``), configurations and their labels
(``grouping``), the diagnostics in words (``diagnostics``, a package of one module per
concern), the study's verdict (``verdict``) and the one bias-corrected moving average
(``smoothing``)."""
