//! Building the filters under test to WebAssembly (filled in with the
//! filter host).
