console.log("quickstart")
