"""End-to-end checks of the deployable artifacts: template, samconfig and the `sam build` output."""
