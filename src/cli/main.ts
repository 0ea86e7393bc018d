// The `minivm` command: parses the sub-command and hands over to its module.
export async function main(argv: string[]): Promise<number> {
  if (argv[0] === "--version" || argv[0] === "-V") {
    process.stdout.write("minivm 0.1.0\n");
    return 0;
  }
  process.stderr.write("minivm: not yet\n");
  return 1;
}
