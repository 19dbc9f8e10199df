"""Producing load: the seeded workload (`workload`), its ground truth (`manifest`), the Kinesis writer
(`kinesis`), KPL aggregation (`kpl`), the run loop (`run`) and `pipeline produce` (`cli`)."""
