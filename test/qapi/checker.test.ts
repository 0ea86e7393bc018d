import { afterAll, describe, expect, it } from "vitest";
import * as path from "node:path";
import { Schema } from "../../src/qapi/model.js";
import { removeTempDirs, schemaError, writeSchemaFiles } from "./helpers.js";

// Each case is a schema (main.json, plus other files where given) and the
// exact message QEMU's qapi-gen prints for it; the wording follows QEMU's
// scripts/qapi (parser.py, expr.py, schema.py).
interface Case {
  readonly what: string;
  readonly main: string;
  readonly files?: Record<string, string>;
  readonly error: string;
}

const IN_STRUCT_FOO = "main.json: In struct 'Foo':\n";

const cases: Case[] = [
  // ---- syntax
  { what: "a stray character", main: "{ 'enum': 'Foo', 'data': [ 'a' ] }\n@bad", error: "main.json:2:1: stray '@bad'" },
  {
    what: "a control character in a string",
    main: "{ 'enum': 'Foo', 'data': [ 'a\tb' ] }",
    error: "main.json:1:28: funny character in string",
  },
  { what: "an escape other than \\\\", main: "{ 'enum': 'Fo\\no' }", error: "main.json:1:11: unknown escape \\n" },
  { what: "an unterminated string", main: "{ 'enum': 'Foo", error: "main.json:1:11: missing terminating \"'\"" },
  {
    what: "a duplicate key",
    main: "{ 'enum': 'Foo',\n  'enum': 'Bar' }",
    error: "main.json:2:11: duplicate key 'enum'",
  },
  { what: "a missing colon", main: "{ 'enum' 'Foo' }", error: "main.json:1:10: expected ':'" },
  { what: "a missing comma", main: "{ 'enum': 'Foo' 'data': [] }", error: "main.json:1:17: expected ',' or '}'" },
  { what: "a number", main: "{ 'enum': 1 }", error: "main.json:1:11: stray '1'" },
  { what: "a trailing comma in a list", main: "{ 'enum': 'Foo', 'data': [ 'a', ] }", error: "main.json:1:33: expected '{', '[', string, or boolean" },
  {
    what: "a stray character after a tab, with the column QEMU computes (its tab formula keeps the column)",
    main: "{ 'enum': 'Foo',\n\t'data': [ 'a' ] } !",
    error: "main.json:2:19: stray '!'",
  },
  { what: "a top-level array", main: "[ 'a' ]", error: "main.json:1: top-level expression must be an object" },
  {
    what: "junk after the opening ##",
    main: "##x\n# @Foo:\n##\n",
    error: "main.json:1:1: junk after '##' at start of documentation comment",
  },
  {
    what: "an unterminated doc comment",
    main: "##\n# @Foo:\n{ 'enum': 'Foo', 'data': [] }",
    error: "main.json:3:1: documentation comment must end with '##'",
  },
  {
    what: "a doc comment for another definition",
    main: "##\n# @Foo:\n##\n{ 'enum': 'Bar', 'data': [] }",
    error: "main.json: In enum 'Bar':\nmain.json:4: documentation comment is for 'Foo'",
  },
  {
    what: "a doc comment followed by a directive",
    main: "##\n# @Foo:\n##\n{ 'pragma': { 'doc-required': true } }",
    error: "main.json:1: documentation for 'Foo' is not followed by the definition",
  },
  {
    what: "a doc comment line without a space after #",
    main: "##\n#@Foo:\n##\n{ 'struct': 'Foo', 'data': {} }",
    error: "main.json:2:1: missing space after #",
  },
  {
    what: "a symbol line without the colon",
    main: "##\n# @Foo\n##\n{ 'struct': 'Foo', 'data': {} }",
    error: "main.json:2:1: line should end with ':'",
  },
  {
    what: "a member description in free-form documentation",
    main: "##\n# = Heading\n# @foo: bar\n##\n",
    error: "main.json:3:1: '@foo:' not allowed in free-form documentation",
  },
  {
    what: "a member described twice",
    main: "##\n# @Foo:\n# @a: one\n# @a: two\n##\n{ 'struct': 'Foo', 'data': { 'a': 'int' } }",
    error: "main.json:4:1: 'a' parameter name duplicated",
  },
  {
    what: "a member description after a tagged section",
    main: "##\n# @foo:\n#\n# Since: 1.0\n# @arg: x\n##\n{ 'command': 'foo', 'data': { 'arg': 'int' } }",
    error: "main.json:5:1: '@arg:' can't follow 'Since' section",
  },
  {
    what: "two Since sections",
    main: "##\n# @foo:\n#\n# Since: 1.0\n#\n# Since: 2.0\n##\n{ 'command': 'foo' }",
    error: "main.json:6:1: duplicated 'Since' section",
  },
  {
    what: "an empty tagged section",
    main: "##\n# @foo:\n#\n# Since:\n##\n{ 'command': 'foo' }",
    error: "main.json:5:1: empty doc section 'Since'",
  },
  {
    what: "a Returns section on a type",
    main: "##\n# @Foo:\n#\n# Returns: nothing\n##\n{ 'struct': 'Foo', 'data': {} }",
    error: "main.json:1: 'Returns:' is only valid for commands",
  },
  {
    what: "an undocumented feature of a documented definition",
    main: "##\n# @Foo:\n##\n{ 'struct': 'Foo', 'data': {}, 'features': [ 'fancy' ] }",
    error: IN_STRUCT_FOO + "main.json:4: feature 'fancy' lacks documentation",
  },
  {
    what: "documentation of a feature that does not exist",
    main: "##\n# @foo:\n#\n# Features:\n# @fancy: very\n##\n{ 'command': 'foo' }",
    error: "main.json:1: documented feature 'fancy' does not exist",
  },
  // ---- directives
  {
    what: "an include of a missing file",
    main: "{ 'include': 'nope.json' }",
    error: "main.json:1: can't read include file 'nope.json': No such file or directory",
  },
  {
    what: "an inclusion loop",
    main: "{ 'include': 'sub/a.json' }",
    files: { "sub/a.json": "\n{ 'include': '../main.json' }" },
    error: "In file included from main.json:1:\nsub/a.json:2: inclusion loop for ../main.json",
  },
  { what: "an include that is not a string", main: "{ 'include': [ 'a.json' ] }", error: "main.json:1: value of 'include' must be a string" },
  { what: "an include with another key", main: "{ 'include': 'a.json', 'if': 'X' }", error: "main.json:1: invalid 'include' directive" },
  { what: "an unknown pragma", main: "{ 'pragma': { 'no-such': true } }", error: "main.json:1: unknown pragma 'no-such'" },
  {
    what: "a non-boolean doc-required",
    main: "{ 'pragma': { 'doc-required': 'yes' } }",
    error: "main.json:1: pragma 'doc-required' must be boolean",
  },
  {
    what: "an exception list that is not a list of strings",
    main: "{ 'pragma': { 'command-name-exceptions': 'do_it' } }",
    error: "main.json:1: pragma command-name-exceptions must be a list of strings",
  },
  { what: "a pragma that is not an object", main: "{ 'pragma': [ 'x' ] }", error: "main.json:1: value of 'pragma' must be an object" },
  // ---- expressions
  {
    what: "an expression without meta-type",
    main: "{ 'data': {} }",
    error: "main.json:1: expression must have exactly one key 'enum', 'struct', 'union', 'alternate', 'command', 'event'",
  },
  {
    what: "an expression with two meta-types",
    main: "{ 'struct': 'Foo', 'enum': 'Bar', 'data': {} }",
    error: "main.json:1: expression must have exactly one key 'enum', 'struct', 'union', 'alternate', 'command', 'event'",
  },
  { what: "a non-string name", main: "{ 'struct': [ 'Foo' ], 'data': {} }", error: "main.json:1: 'struct' requires a string name" },
  {
    what: "an unknown key, listing the valid ones",
    main: "{ 'struct': 'Foo', 'data': {}, 'foo': 'x' }",
    error: IN_STRUCT_FOO + "main.json:1: struct has unknown key 'foo'\nValid keys are 'base', 'data', 'features', 'if', 'struct'.",
  },
  {
    what: "two unknown keys",
    main: "{ 'command': 'foo', 'bar': true, 'arguments': {} }",
    error:
      "main.json: In command 'foo':\nmain.json:1: command has unknown keys 'arguments', 'bar'\n" +
      "Valid keys are 'allow-oob', 'allow-preconfig', 'boxed', 'command', 'coroutine', 'data', 'features', 'gen', 'if', 'returns', 'success-response'.",
  },
  {
    what: "missing keys",
    main: "{ 'union': 'Foo', 'data': {} }",
    error: "main.json: In union 'Foo':\nmain.json:1: union misses keys 'base', 'discriminator'",
  },
  { what: "a missing key", main: "{ 'enum': 'Foo' }", error: "main.json: In enum 'Foo':\nmain.json:1: enum misses key 'data'" },
  {
    what: "a command name with uppercase",
    main: "{ 'command': 'doIt' }",
    error: "main.json: In command 'doIt':\nmain.json:1: name of command must not use uppercase or '_'",
  },
  {
    what: "a command name with '_' not in command-name-exceptions",
    main: "{ 'pragma': { 'command-name-exceptions': [ 'do_that' ] } }\n{ 'command': 'do_it' }",
    error: "main.json: In command 'do_it':\nmain.json:2: name of command must not use uppercase or '_'",
  },
  {
    what: "a type name that is not CamelCase",
    main: "{ 'struct': 'foo', 'data': {} }",
    error: "main.json: In struct 'foo':\nmain.json:1: name of struct must use CamelCase",
  },
  {
    what: "an event name with lowercase",
    main: "{ 'event': 'Boom' }",
    error: "main.json: In event 'Boom':\nmain.json:1: name of event must not use lowercase or '-'",
  },
  {
    what: "a type name ending in List",
    main: "{ 'struct': 'FooList', 'data': {} }",
    error: "main.json: In struct 'FooList':\nmain.json:1: struct name should not end in 'List'",
  },
  {
    what: "an enum value that is not a name",
    main: "{ 'enum': 'Foo', 'data': [ 'a b' ] }",
    error: "main.json: In enum 'Foo':\nmain.json:1: 'data' member 'a b' has an invalid name",
  },
  {
    what: "a name in the reserved q_ namespace",
    main: "{ 'command': 'q_foo' }",
    error: "main.json: In command 'q_foo':\nmain.json:1: command has an invalid name",
  },
  {
    what: "the reserved member name 'u'",
    main: "{ 'struct': 'Foo', 'data': { 'u': 'int' } }",
    error: IN_STRUCT_FOO + "main.json:1: 'data' member 'u' uses reserved name",
  },
  {
    what: "a reserved has- member name",
    main: "{ 'struct': 'Foo', 'data': { '*has-x': 'int' } }",
    error: IN_STRUCT_FOO + "main.json:1: 'data' member '*has-x' uses reserved name",
  },
  {
    what: "a member name with uppercase",
    main: "{ 'struct': 'Foo', 'data': { 'Bar': 'int' } }",
    error: IN_STRUCT_FOO + "main.json:1: name of 'data' member 'Bar' must not use uppercase or '_'",
  },
  {
    what: "enum data that is not an array",
    main: "{ 'enum': 'Foo', 'data': { 'a': 'b' } }",
    error: "main.json: In enum 'Foo':\nmain.json:1: 'data' must be an array",
  },
  {
    what: "an enum prefix that is not a string",
    main: "{ 'enum': 'Foo', 'prefix': [ 'X' ], 'data': [] }",
    error: "main.json: In enum 'Foo':\nmain.json:1: 'prefix' must be a string",
  },
  {
    what: "an 'if' that is not an identifier",
    main: "{ 'struct': 'Foo', 'data': {}, 'if': 'defined(FOO)' }",
    error: IN_STRUCT_FOO + "main.json:1: 'if' condition 'defined(FOO)' of struct is not a valid identifier",
  },
  {
    what: "an empty 'all' condition",
    main: "{ 'struct': 'Foo', 'data': {}, 'if': { 'all': [] } }",
    error: IN_STRUCT_FOO + "main.json:1: 'if' condition [] of struct is useless",
  },
  {
    what: "an 'if' with two operators",
    main: "{ 'struct': 'Foo', 'data': {}, 'if': { 'all': [ 'A' ], 'any': [ 'B' ] } }",
    error: IN_STRUCT_FOO + "main.json:1: 'if' condition of struct has conflicting keys",
  },
  {
    what: "an unknown 'if' operator",
    main: "{ 'struct': 'Foo', 'data': {}, 'if': { 'nor': 'A' } }",
    error: IN_STRUCT_FOO + "main.json:1: 'if' condition of struct has unknown key 'nor'\nValid keys are 'all', 'any', 'not'.",
  },
  {
    what: "an 'if' given as a list",
    main: "{ 'struct': 'Foo', 'data': {}, 'if': [ 'A' ] }",
    error: IN_STRUCT_FOO + "main.json:1: 'if' condition of struct must be a string or an object",
  },
  {
    what: "an 'any' operand that is not an array",
    main: "{ 'struct': 'Foo', 'data': { 'a': { 'type': 'int', 'if': { 'any': 'A' } } } }",
    error: IN_STRUCT_FOO + "main.json:1: 'any' condition of 'data' member 'a' must be an array",
  },
  {
    what: "features that are not an array",
    main: "{ 'struct': 'Foo', 'data': {}, 'features': 'x' }",
    error: IN_STRUCT_FOO + "main.json:1: 'features' must be an array",
  },
  {
    what: "a feature name with uppercase",
    main: "{ 'struct': 'Foo', 'data': {}, 'features': [ 'Big' ] }",
    error: IN_STRUCT_FOO + "main.json:1: name of 'features' member 'Big' must not use uppercase or '_'",
  },
  {
    what: "allow-oob false",
    main: "{ 'command': 'foo', 'allow-oob': false }",
    error: "main.json: In command 'foo':\nmain.json:1: flag 'allow-oob' may only use true value",
  },
  {
    what: "gen true",
    main: "{ 'command': 'foo', 'gen': true }",
    error: "main.json: In command 'foo':\nmain.json:1: flag 'gen' may only use false value",
  },
  {
    what: "allow-oob with coroutine",
    main: "{ 'command': 'foo', 'allow-oob': true, 'coroutine': true }",
    error: "main.json: In command 'foo':\nmain.json:1: flags 'allow-oob' and 'coroutine' are incompatible",
  },
  {
    what: "boxed without data",
    main: "{ 'event': 'FOO', 'boxed': true }",
    error: "main.json: In event 'FOO':\nmain.json:1: 'boxed': true requires 'data'",
  },
  {
    what: "an array of two types",
    main: "{ 'struct': 'Foo', 'data': { 'a': [ 'int', 'str' ] } }",
    error: IN_STRUCT_FOO + "main.json:1: 'data' member 'a': array type must contain single type name",
  },
  {
    what: "an inline struct base",
    main: "{ 'struct': 'Foo', 'base': { 'a': 'int' }, 'data': {} }",
    error: IN_STRUCT_FOO + "main.json:1: 'base' should be a type name",
  },
  {
    what: "an empty alternate",
    main: "{ 'alternate': 'Alt', 'data': {} }",
    error: "main.json: In alternate 'Alt':\nmain.json:1: 'data' must not be empty",
  },
  {
    what: "two alternate branches that are arrays (QEMU 7.2 allows one; all lists look alike on the wire)",
    main: "{ 'alternate': 'Alt', 'data': { 'a': [ 'int' ], 'b': [ 'str' ] } }",
    error: "main.json: In alternate 'Alt':\nmain.json:1: branch 'b' can't be distinguished from 'a'",
  },
  {
    what: "an alternate array branch with two element types",
    main: "{ 'alternate': 'Alt', 'data': { 'a': [ 'int', 'str' ] } }",
    error: "main.json: In alternate 'Alt':\nmain.json:1: 'data' member 'a': array type must contain single type name",
  },
  {
    what: "a union branch that is an array",
    main: "{ 'enum': 'Kind', 'data': [ 'a' ] }\n{ 'union': 'Uni', 'base': { 'k': 'Kind' }, 'discriminator': 'k', 'data': { 'a': [ 'int' ] } }",
    error: "main.json: In union 'Uni':\nmain.json:2: 'data' member 'a' cannot be an array",
  },
  {
    what: "a command returning a list of non-objects, named as written",
    main: "{ 'command': 'foo', 'returns': [ 'int' ] }",
    error: "main.json: In command 'foo':\nmain.json:1: command's 'returns' cannot take array type ['int']",
  },
  {
    what: "inline returns",
    main: "{ 'command': 'foo', 'returns': { 'a': 'int' } }",
    error: "main.json: In command 'foo':\nmain.json:1: 'returns' should be a type name",
  },
  {
    what: "a missing doc comment under doc-required",
    main: "{ 'pragma': { 'doc-required': true } }\n{ 'struct': 'Foo', 'data': {} }",
    error: IN_STRUCT_FOO + "main.json:2: documentation comment required",
  },
  // ---- semantics
  {
    what: "a type defined twice",
    main: "{ 'struct': 'Foo', 'data': {} }\n{ 'enum': 'Foo', 'data': [] }",
    error: "main.json: In enum 'Foo':\nmain.json:2: 'Foo' is already defined\n" + IN_STRUCT_FOO + "main.json:1: previous definition",
  },
  {
    what: "a redefined built-in",
    main: "{ 'enum': 'QType', 'data': [ 'a' ] }",
    error: "main.json: In enum 'QType':\nmain.json:1: enum type 'QType' is already defined",
  },
  {
    what: "a member of unknown type",
    main: "{ 'struct': 'Foo', 'data': { 'a': 'Nope' } }",
    error: IN_STRUCT_FOO + "main.json:1: member 'a' uses unknown type 'Nope'",
  },
  {
    what: "an array of unknown type",
    main: "{ 'struct': 'Foo', 'data': { 'a': [ 'Nope' ] } }",
    error: IN_STRUCT_FOO + "main.json:1: struct uses unknown type 'Nope'",
  },
  {
    what: "command data of unknown type",
    main: "{ 'command': 'foo', 'data': 'Nope' }",
    error: "main.json: In command 'foo':\nmain.json:1: command's 'data' uses unknown type 'Nope'",
  },
  {
    what: "command returns of unknown type",
    main: "{ 'command': 'foo', 'returns': 'Nope' }",
    error: "main.json: In command 'foo':\nmain.json:1: command's 'returns' uses unknown type 'Nope'",
  },
  {
    what: "event data of unknown type",
    main: "{ 'event': 'FOO', 'data': 'Nope' }",
    error: "main.json: In event 'FOO':\nmain.json:1: event's 'data' uses unknown type 'Nope'",
  },
  {
    what: "a non-object reply outside command-returns-exceptions",
    main: "{ 'command': 'foo', 'returns': 'int' }",
    error: "main.json: In command 'foo':\nmain.json:1: command's 'returns' cannot take built-in type 'int'",
  },
  {
    what: "an array of strings as reply",
    main: "{ 'command': 'foo', 'returns': [ 'str' ] }",
    error: "main.json: In command 'foo':\nmain.json:1: command's 'returns' cannot take array type ['str']",
  },
  {
    what: "an enum as command data",
    main: "{ 'enum': 'Enum', 'data': [ 'a' ] }\n{ 'command': 'foo', 'data': 'Enum' }",
    error: "main.json: In command 'foo':\nmain.json:2: command's 'data' cannot take enum type 'Enum'",
  },
  {
    what: "a union as command data without boxed",
    main:
      "{ 'enum': 'Kind', 'data': [ 'a' ] }\n" +
      "{ 'union': 'Uni', 'base': { 'kind': 'Kind' }, 'discriminator': 'kind', 'data': {} }\n" +
      "{ 'command': 'foo', 'data': 'Uni' }",
    error: "main.json: In command 'foo':\nmain.json:3: command's 'data' can take union type 'Uni' only with 'boxed': true",
  },
  {
    what: "a member clashing with a base member",
    main: "{ 'struct': 'Base', 'data': { 'a': 'int' } }\n{ 'struct': 'Foo', 'base': 'Base', 'data': { 'a': 'str' } }",
    error: IN_STRUCT_FOO + "main.json:2: member 'a' collides with member 'a' of type 'Base'",
  },
  {
    what: "members whose C names clash",
    main: "{ 'pragma': { 'member-name-exceptions': [ 'Foo' ] } }\n{ 'struct': 'Foo', 'data': { 'a-b': 'int', 'a_b': 'int' } }",
    error: IN_STRUCT_FOO + "main.json:2: member 'a_b' collides with member 'a-b'",
  },
  {
    what: "a branch member clashing with a base member",
    main:
      "{ 'enum': 'Kind', 'data': [ 'a' ] }\n" +
      "{ 'struct': 'Branch', 'data': { 'name': 'str' } }\n" +
      "{ 'union': 'Uni', 'base': { 'kind': 'Kind', 'name': 'str' }, 'discriminator': 'kind', 'data': { 'a': 'Branch' } }",
    error: "main.json: In union 'Uni':\nmain.json:3: member 'name' of type 'Branch' collides with base member 'name'",
  },
  {
    what: "a discriminator that is not a base member",
    main: "{ 'enum': 'Kind', 'data': [ 'a' ] }\n{ 'union': 'Uni', 'base': { 'kind': 'Kind' }, 'discriminator': 'type', 'data': {} }",
    error: "main.json: In union 'Uni':\nmain.json:2: discriminator 'type' is not a member of 'base'",
  },
  {
    what: "a discriminator that is not an enum",
    main: "{ 'union': 'Uni', 'base': { 'kind': 'str' }, 'discriminator': 'kind', 'data': {} }",
    error: "main.json: In union 'Uni':\nmain.json:1: discriminator member 'kind' of 'base' must be of enum type",
  },
  {
    what: "an optional discriminator",
    main: "{ 'enum': 'Kind', 'data': [ 'a' ] }\n{ 'union': 'Uni', 'base': { '*kind': 'Kind' }, 'discriminator': 'kind', 'data': {} }",
    error: "main.json: In union 'Uni':\nmain.json:2: discriminator member 'kind' of 'base' must not be optional",
  },
  {
    what: "a conditional discriminator",
    main:
      "{ 'enum': 'Kind', 'data': [ 'a' ] }\n" +
      "{ 'union': 'Uni', 'base': { 'kind': { 'type': 'Kind', 'if': 'X' } }, 'discriminator': 'kind', 'data': {} }",
    error: "main.json: In union 'Uni':\nmain.json:2: discriminator member 'kind' of 'base' must not be conditional",
  },
  {
    what: "a discriminator of a named base that is not an enum",
    main: "{ 'struct': 'Base', 'data': { 'kind': 'int' } }\n{ 'union': 'Uni', 'base': 'Base', 'discriminator': 'kind', 'data': {} }",
    error: "main.json: In union 'Uni':\nmain.json:2: discriminator member 'kind' of base type 'Base' must be of enum type",
  },
  {
    what: "a branch that is not an enum value",
    main:
      "{ 'enum': 'Kind', 'data': [ 'a' ] }\n{ 'struct': 'Empty', 'data': {} }\n" +
      "{ 'union': 'Uni', 'base': { 'kind': 'Kind' }, 'discriminator': 'kind', 'data': { 'b': 'Empty' } }",
    error: "main.json: In union 'Uni':\nmain.json:3: branch 'b' is not a value of enum type 'Kind'",
  },
  {
    what: "a branch that is not an object",
    main: "{ 'enum': 'Kind', 'data': [ 'a' ] }\n{ 'union': 'Uni', 'base': { 'kind': 'Kind' }, 'discriminator': 'kind', 'data': { 'a': 'int' } }",
    error: "main.json: In union 'Uni':\nmain.json:2: branch 'a' cannot use built-in type 'int'",
  },
  {
    what: "a union without branches",
    main: "{ 'enum': 'Kind', 'data': [] }\n{ 'union': 'Uni', 'base': { 'kind': 'Kind' }, 'discriminator': 'kind', 'data': {} }",
    error: "main.json: In union 'Uni':\nmain.json:2: union has no branches",
  },
  {
    what: "a union as base",
    main:
      "{ 'enum': 'Kind', 'data': [ 'a' ] }\n" +
      "{ 'union': 'Uni', 'base': { 'kind': 'Kind' }, 'discriminator': 'kind', 'data': {} }\n" +
      "{ 'struct': 'Foo', 'base': 'Uni', 'data': {} }",
    error: IN_STRUCT_FOO + "main.json:3: 'base' requires a struct type, union type 'Uni' isn't",
  },
  {
    what: "alternate branches of the same JSON type",
    main: "{ 'alternate': 'Alt', 'data': { 'a': 'int', 'b': 'number' } }",
    error: "main.json: In alternate 'Alt':\nmain.json:1: branch 'b' can't be distinguished from 'a'",
  },
  {
    what: "an alternate string branch with a boolean one",
    main: "{ 'alternate': 'Alt', 'data': { 'a': 'bool', 'b': 'str' } }",
    error: "main.json: In alternate 'Alt':\nmain.json:1: branch 'b' can't be distinguished from 'a'",
  },
  {
    what: "an alternate branch of type any",
    main: "{ 'alternate': 'Alt', 'data': { 'a': 'any' } }",
    error: "main.json: In alternate 'Alt':\nmain.json:1: branch 'a' cannot use built-in type 'any'",
  },
  {
    what: "the special feature deprecated on a type",
    main: "{ 'struct': 'Foo', 'data': {}, 'features': [ 'deprecated' ] }",
    error: IN_STRUCT_FOO + "main.json:1: feature 'deprecated' is not supported for types",
  },
  {
    what: "the special feature unstable on an enum",
    main: "{ 'enum': 'Foo', 'data': [], 'features': [ 'unstable' ] }",
    error: "main.json: In enum 'Foo':\nmain.json:1: feature 'unstable' is not supported for types",
  },
  {
    what: "a feature listed twice",
    main: "{ 'command': 'foo', 'features': [ 'fancy', 'fancy' ] }",
    error: "main.json: In command 'foo':\nmain.json:1: feature 'fancy' collides with feature 'fancy'",
  },
  {
    what: "an enum value listed twice",
    main: "{ 'enum': 'Foo', 'data': [ 'a', 'a' ] }",
    error: "main.json: In enum 'Foo':\nmain.json:1: value 'a' collides with value 'a'",
  },
  {
    what: "a struct that is its own base",
    main: "{ 'struct': 'Foo', 'base': 'Foo', 'data': {} }",
    error: IN_STRUCT_FOO + "main.json:1: object Foo contains itself",
  },
  {
    what: "documentation of a member that does not exist",
    main: "##\n# @Foo:\n#\n# @nope: gone\n##\n{ 'struct': 'Foo', 'data': {} }",
    error: "main.json:1: documented member 'nope' does not exist",
  },
  {
    what: "an error in an included file",
    main: "# the top\n{ 'include': 'sub.json' }",
    files: { "sub.json": "{ 'struct': 'Ok', 'data': {} }\n{ 'struct': 'Bad', 'data': { 'x': 'Nope' } }" },
    error: "In file included from main.json:2:\nsub.json: In struct 'Bad':\nsub.json:2: member 'x' uses unknown type 'Nope'",
  },
  {
    what: "an error two includes deep",
    main: "{ 'include': 'sub/a.json' }",
    files: { "sub/a.json": "# a\n{ 'include': 'b.json' }", "sub/b.json": "{ 'event': 'lower' }" },
    error:
      "In file included from main.json:1:\nIn file included from sub/a.json:2:\n" +
      "sub/b.json: In event 'lower':\nsub/b.json:1: name of event must not use lowercase or '-'",
  },
];

describe("QAPI schema checker", () => {
  it("has a large table of rejected schemas", () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  for (const c of cases) {
    it(`rejects ${c.what} with QEMU's message`, () => {
      expect(schemaError({ "main.json": c.main, ...c.files })).toBe(c.error);
    });
  }

  it("accepts names allowed by the pragma exceptions", () => {
    expect(
      schemaError({
        "main.json":
          "{ 'pragma': { 'command-name-exceptions': [ 'do_it' ], 'command-returns-exceptions': [ 'get-n' ],\n" +
          "              'member-name-exceptions': [ 'Legacy' ] } }\n" +
          "{ 'command': 'do_it' }\n{ 'command': 'get-n', 'returns': 'int' }\n" +
          "{ 'struct': 'Legacy', 'data': { 'Some_Name': 'int' } }\n",
      }),
    ).toBeNull();
  });

  it("accepts downstream __RFQDN_ prefixes, x- prefixes and enum values starting with a digit", () => {
    expect(
      schemaError({
        "main.json":
          "{ 'struct': '__org.qemu_x-Thing', 'data': { '__org.qemu_x-member': 'int', '*x-opt': 'str' } }\n" +
          "{ 'command': '__org.qemu_x-command', 'data': '__org.qemu_x-Thing' }\n" +
          "{ 'event': '__org.qemu_x-EVENT', 'data': { 'a': '__org.qemu_x-Thing' } }\n" +
          "{ 'enum': '__org.qemu_x-Enum', 'data': [ '__org.qemu_x-value', '1st' ] }\n",
      }),
    ).toBeNull();
  });

  it("accepts an alternate with one array branch and conditional arguments of an unboxed command (QEMU 7.2)", () => {
    expect(
      schemaError({
        "main.json":
          "{ 'struct': 'Obj', 'data': { 'a': 'int' } }\n" +
          "{ 'alternate': 'Alt', 'data': { 'obj': 'Obj', 'list': [ 'int' ], 'n': 'null' } }\n" +
          "{ 'command': 'foo', 'data': { 'x': 'Alt', 'y': { 'type': 'int', 'if': 'X' } } }\n",
      }),
    ).toBeNull();
  });

  it("accepts doc continuation lines aligned with the text (QEMU 7.2) or indented four spaces (later QEMU)", () => {
    const doc = (cont: string): string | null =>
      schemaError({
        "main.json": `##\n# @foo:\n#\n# @long-name: line one\n#${cont}line two\n##\n{ 'command': 'foo', 'data': { 'long-name': 'int' } }\n`,
      });
    expect(doc(" ".repeat(1 + "@long-name: ".length))).toBeNull();
    expect(doc(" ".repeat(1 + 4))).toBeNull();
    expect(doc(" ".repeat(1 + 3))).toBe("main.json:5:1: unexpected de-indent (expected at least 12 spaces)");
  });

  it("strips the section's indentation from doc text as QEMU 7.2 does", () => {
    const dir = writeSchemaFiles({
      "main.json":
        "##\n# @foo:\n#\n# @a: line one\n#         indented more\n#\n# Returns: nothing\n#          at all\n##\n" +
        "{ 'command': 'foo', 'data': { 'a': 'int' } }\n",
    });
    const doc = Schema.load(path.join(dir, "main.json")).lookupEntity("foo")!.doc!;
    expect(doc.args.get("a")!.text).toBe("line one\n    indented more");
    expect(doc.sections.map((s) => [s.name, s.text])).toEqual([["Returns", "nothing\nat all"]]);
  });

  it("reads an included file only once", () => {
    expect(
      schemaError({
        "main.json": "{ 'include': 'a.json' }\n{ 'include': 'a.json' }\n{ 'include': 'b.json' }",
        "a.json": "{ 'struct': 'Foo', 'data': {} }",
        "b.json": "{ 'include': 'a.json' }",
      }),
    ).toBeNull();
  });

  it("reports an unreadable top-level schema without a location", () => {
    expect(schemaError({ "other.json": "" })).toMatch(/^can't read schema file '.*main\.json': No such file or directory$/);
  });
});

afterAll(removeTempDirs);
