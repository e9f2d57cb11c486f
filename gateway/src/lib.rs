//! The national gateway: routes each lookup to the responsible authority's
//! node and searches every authority at once. Built under issue 3; until then
//! this crate only holds its place in the workspace.
#![forbid(unsafe_code)]
