/* The module's version; spec/module_spec.lua checks it matches the rockspec. */
#define RCACHE_VERSION "0.1.0"
