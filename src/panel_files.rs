//! The control panel's files as an image gets them (`templates/ui/`): the project's own copy
//! when it has one (podstack's repository, a studio that forks the panel), else the panel
//! compiled into podstack, so a project made by `podstack init` holds only its stacks.

use std::path::Path;

use crate::project::Project;
use crate::render::{read_tree, RenderError, TEMPLATES, UI_DIR};

/// Every panel file, named by its path in the build context (`templates/ui/app.js`), in a
/// stable order.
pub fn panel_files(project: &Project) -> Result<Vec<(String, Vec<u8>)>, RenderError> {
    if project.root.join(UI_DIR).is_dir() {
        return read_tree(&project.root, UI_DIR);
    }
    Ok(compiled_in())
}

/// The panel compiled into podstack (from its repository's `templates/ui/`).
pub fn compiled_in() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let ui = UI_DIR
        .strip_prefix("templates/")
        .and_then(|dir| TEMPLATES.get_dir(dir))
        .expect("the panel is compiled in from templates/ui");
    collect(ui, &mut files);
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

fn collect(dir: &include_dir::Dir<'static>, files: &mut Vec<(String, Vec<u8>)>) {
    for file in dir.files() {
        let name = Path::new("templates").join(file.path());
        files.push((
            name.to_string_lossy().replace('\\', "/"),
            file.contents().to_vec(),
        ));
    }
    for sub in dir.dirs() {
        collect(sub, files);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_panel_is_the_repository_s() {
        let repo = Project {
            root: env!("CARGO_MANIFEST_DIR").into(),
        };
        let bare = Project {
            root: std::env::temp_dir().join("podstack-no-such-project"),
        };
        assert_eq!(panel_files(&bare).unwrap(), panel_files(&repo).unwrap());
    }
}
