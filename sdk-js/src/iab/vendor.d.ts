// @iabtechlabtcf/stub ships no types: its CommonJS module exports the
// function that installs the __tcfapi stub.
declare module "@iabtechlabtcf/stub" {
  const installStub: () => void;
  export default installStub;
}
