"""Migration analytics from every call: windows, sketches, statistics, verdicts, gauges, snapshot."""
