// This file only keeps interop/ (the JavaScript peers and node_modules, some
// of which ship Go files) out of the main module's ./... pattern.
module interop

go 1.26
