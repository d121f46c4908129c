// The release this build is: `--version` and the wsgate_build_info series.
// Kept in step with package.json by tests/unit/ops.test.ts (the core cannot read files).
export const VERSION = "0.1.0";
