"""Pure business logic for the pipeline: plain Python that never imports pyflink, so it is unit-testable."""
