/**
 * What to do about a library that cannot be opened, added to the error where
 * the load failure is reported. Node's own message says what failed, not why
 * it failed for a hook library.
 */

/** Node's ERR_MODULE_NOT_FOUND for the author API, with or without a subpath. */
const D2BOX_NOT_FOUND = /Cannot find package 'd2box'/;

export const D2BOX_NOT_FOUND_HINT =
  "hint: a library imports d2box/hooks as a package, found in a node_modules/d2box folder above the library's file; " +
  'in the library\'s package, add it (npm install --save-dev /path/to/d2box, or npm link d2box after npm link in d2box\'s folder), ' +
  'or run the library with "isolation": "process", where d2box/hooks is always there (docs/writing-hooks.md, "Out of tree: a quick start")';

/** `message` with a hint when the failure is one an author can fix this way. */
export function withLoadHint(message: string): string {
  return D2BOX_NOT_FOUND.test(message) ? `${message}; ${D2BOX_NOT_FOUND_HINT}` : message;
}
