"""``lrlab.transfer``: the optimal learning rate predicted at a target scale from small proxies, with an interval."""
