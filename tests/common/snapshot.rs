//! insta snapshots under the names they had when each test file was its own binary.
//!
//! insta names a snapshot `<module path>__<name>.snap`. In the one test binary the module path
//! of `tests/report_render.rs` is `main::report_render`, which would make every committed
//! `report_render__<name>.snap` a new, unreviewed snapshot; [`assert_snapshot!`] keeps the
//! file's own name (`<file>__<name>.snap`), so the snapshots stay where and what they are.

/// `<file>__<name>` for a test module's `module_path!()` (`main::report_render`): the
/// binary's name dropped, nested modules joined by `__` as insta joins them.
pub fn file_snapshot_name(module_path: &str, name: &str) -> String {
    let module = module_path
        .split_once("::")
        .map_or(module_path, |(_binary, module)| module);
    format!("{}__{name}", module.replace("::", "__"))
}

/// `insta::assert_snapshot!(name, value)`, looked up as `tests/snapshots/<file>__<name>.snap`.
macro_rules! assert_snapshot {
    ($name:expr, $value:expr $(,)?) => {
        insta::with_settings!({ prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(
                $crate::common::snapshot::file_snapshot_name(module_path!(), &$name),
                $value
            );
        })
    };
}
pub(crate) use assert_snapshot;
