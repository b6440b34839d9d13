/** The path of Node `major`'s official binary (fetched once from the npm registry), or why it could not be had. */
export declare function nodeBinary(major: number): { node: string; why?: undefined } | { node?: undefined; why: string };
