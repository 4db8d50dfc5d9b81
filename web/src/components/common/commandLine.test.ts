import { describe, expect, it } from "vitest";
import { CommandLineError, splitCommandLine } from "./commandLine";

describe("splitCommandLine", () => {
  it("splits on any whitespace", () => {
    expect(splitCommandLine("  bash   -l\t-c  ")).toEqual(["bash", "-l", "-c"]);
    expect(splitCommandLine("")).toEqual([]);
  });

  it("keeps quoted words together", () => {
    expect(splitCommandLine(`python3 -c 'print("hi there")'`)).toEqual(["python3", "-c", 'print("hi there")']);
    expect(splitCommandLine(`echo "a  b" c`)).toEqual(["echo", "a  b", "c"]);
    expect(splitCommandLine(`git commit -m "it's done"`)).toEqual(["git", "commit", "-m", "it's done"]);
  });

  it("joins quoted parts that touch into one word and keeps empty quoted words", () => {
    expect(splitCommandLine(`--name='my app'x`)).toEqual(["--name=my appx"]);
    expect(splitCommandLine(`printf '' x`)).toEqual(["printf", "", "x"]);
  });

  it("honours backslash escapes outside single quotes", () => {
    expect(splitCommandLine(String.raw`ls my\ dir`)).toEqual(["ls", "my dir"]);
    expect(splitCommandLine(String.raw`echo "say \"hi\""`)).toEqual(["echo", 'say "hi"']);
    expect(splitCommandLine(String.raw`echo 'a\b'`)).toEqual(["echo", String.raw`a\b`]);
  });

  it("refuses an unclosed quote", () => {
    expect(() => splitCommandLine(`echo "oops`)).toThrow(CommandLineError);
    expect(() => splitCommandLine(`echo 'oops`)).toThrow(/single quote/);
  });
});
