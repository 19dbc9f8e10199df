"""The CDK app's stacks: one construct per part of the pipeline, composed per deployment target in `app`."""
